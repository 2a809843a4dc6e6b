import Foundation

/// What the `local` deploy target knows about one service, kept in
/// `<state-dir>/services/<service>/state.json`: the instances serving traffic,
/// the ones kept for a rollback, and the ones a deploy was starting when it was
/// interrupted. With the nginx upstream it is enough to finish or undo any
/// deploy that a killed worker left half done.
public struct LocalDeployment: Codable, Sendable, Equatable {
    public struct Instance: Codable, Sendable, Equatable {
        public var port: Int
        /// The instance's process group (it leads a session of its own).
        public var pid: Int32

        public init(port: Int, pid: Int32) {
            self.port = port
            self.pid = pid
        }
    }

    /// One version of the service and its instances.
    public struct Release: Codable, Sendable, Equatable {
        public var version: String
        public var instances: [Instance]
        /// When a release that stopped serving may be stopped (ms since the epoch); nil while it serves.
        public var keepUntilMs: Int64?

        public init(version: String, instances: [Instance], keepUntilMs: Int64? = nil) {
            self.version = version
            self.instances = instances
            self.keepUntilMs = keepUntilMs
        }

        public var ports: [Int] { instances.map(\.port) }
    }

    public var service: String
    /// The nginx `listen` address of the service (`127.0.0.1:8300`).
    public var listen: String
    /// Serving traffic now.
    public var active: Release?
    /// The release before, kept running for the rollback window.
    public var previous: Release?
    /// Being started by a deploy; not serving yet.
    public var pending: Release?
    /// Versions deployed, oldest first (the last is `active`'s): what a rollback goes back to.
    public var history: [String]
    /// How each recent version was started, so that a rollback can start it again as it was.
    public var recipes: [String: Recipe]?

    /// What starts one instance of a version.
    public struct Recipe: Codable, Sendable, Equatable {
        public var command: String
        public var workdir: String?
        public var environment: [String: String]

        public init(command: String, workdir: String?, environment: [String: String]) {
            self.command = command
            self.workdir = workdir
            self.environment = environment
        }
    }

    /// Keeps how `version` was started, for the last `keep` versions of the history.
    public mutating func remember(_ version: String, _ recipe: Recipe, keep: Int = 10) {
        var recipes = self.recipes ?? [:]
        recipes[version] = recipe
        let recent = Set(history.suffix(keep) + [version])
        self.recipes = recipes.filter { recent.contains($0.key) }
    }

    public init(service: String, listen: String) {
        self.service = service
        self.listen = listen
        history = []
    }

    /// What an interrupted deploy left, given the ports nginx actually sends traffic to.
    public enum Recovery: Sendable, Equatable {
        /// Nothing was half done.
        case clean
        /// The switch happened but was not recorded: `pending` is serving.
        case finishSwitch
        /// `pending` never served: stop it and start over.
        case discardPending
    }

    public func recovery(upstreamPorts: [Int]) -> Recovery {
        guard let pending else { return .clean }
        return Set(upstreamPorts) == Set(pending.ports) && !upstreamPorts.isEmpty ? .finishSwitch : .discardPending
    }

    /// `pending` becomes `active`; what served becomes `previous`, kept until `keepUntilMs`.
    /// Returns the release that was `previous` before, now to be stopped.
    public mutating func promotePending(keepUntilMs: Int64) -> Release? {
        guard let pending else { return nil }
        let retired = previous
        previous = active.map { var release = $0; release.keepUntilMs = keepUntilMs; return release }
        active = pending
        self.pending = nil
        if history.last != pending.version { history.append(pending.version) }
        return retired
    }

    /// The version a rollback returns to: the one deployed before the active one.
    public var rollbackVersion: String? {
        guard let active else { return nil }
        return history.last(where: { $0 != active.version })
    }

    /// Releases that no longer serve and whose rollback window has passed.
    public func expired(nowMs: Int64) -> Release? {
        guard let previous, let until = previous.keepUntilMs, until <= nowMs else { return nil }
        return previous
    }
}

/// The nginx configuration the `local` target writes: one main file that
/// includes a file per service, each an upstream of the serving instances and
/// a server on the service's `listen` address.
public enum NginxConfig {
    /// `nginx.conf` for a prefix directory the worker owns (pid, logs, temp files in it).
    public static func main(prefix: String) -> String {
        """
        # Written by the gantry deploy worker; the services/*.conf files are its too.
        worker_processes 1;
        pid \(prefix)/nginx.pid;
        error_log \(prefix)/error.log warn;
        events { worker_connections 1024; }
        http {
            access_log off;
            client_body_temp_path \(prefix)/tmp/body;
            proxy_temp_path \(prefix)/tmp/proxy;
            fastcgi_temp_path \(prefix)/tmp/fastcgi;
            uwsgi_temp_path \(prefix)/tmp/uwsgi;
            scgi_temp_path \(prefix)/tmp/scgi;
            include \(prefix)/services/*.conf;
        }

        """
    }

    /// The upstream name of a service (letters, digits and `_` only).
    public static func upstream(_ service: String) -> String {
        "gantry_" + String(service.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    /// A service's file: traffic on `listen` goes to `ports`; a request that fails to
    /// connect moves to the next instance rather than failing.
    /// `release` comes back in the `X-Gantry-Release` header of every answer, so that
    /// the worker can see when nginx's reload has taken effect.
    public static func service(_ service: String, listen: String, ports: [Int], release: String) -> String {
        let servers = ports.map { "    server 127.0.0.1:\($0) max_fails=0;" }.joined(separator: "\n")
        return """
            # gantry service \(service): \(ports.map(String.init).joined(separator: ","))
            upstream \(upstream(service)) {
            \(servers)
                keepalive 16;
            }
            server {
                listen \(listen);
                location / {
                    proxy_pass http://\(upstream(service));
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                    proxy_set_header Host $host;
                    proxy_next_upstream error timeout http_502 http_503;
                    proxy_connect_timeout 2s;
                    add_header X-Gantry-Release "\(release.filter { $0.isLetter || $0.isNumber || "._-".contains($0) })" always;
                }
            }

            """
    }

    /// The ports of a service file written by `service(_:listen:ports:)`.
    public static func ports(inServiceConfig text: String) -> [Int] {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("# gantry service ") }),
              let colon = line.lastIndex(of: ":") else { return [] }
        return line[line.index(after: colon)...].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }
}
