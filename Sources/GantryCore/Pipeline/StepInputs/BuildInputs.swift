/// `build`'s `with:` (schema: `StepInputSchemas.build`; read by BuildExecutor's BuildSpec).
/// The script stays as written (its expressions become variables); the shell, the grace and
/// the inherited names are read as written, so that no run's value picks the program, the
/// signal timing or a worker variable to pass on.
public struct BuildInputs: StepInputs {
    /// A shell script.
    public var run: String?
    /// Or commands joined into one script, in order.
    public var commands: [String]?
    /// Default: the worker's working directory.
    public var workdir: String?
    /// `bash`, `sh` or a path (default bash when installed, else sh).
    public var shell: String?
    /// Data: each value is passed as it resolves (a number as its text).
    public var env: [String: String]?
    /// Worker variables the command may see.
    public var inheritEnv: [String]?
    /// SIGTERM to the group, then SIGKILL after this (default 10s).
    public var killGrace: Duration?

    public enum CodingKeys: String, InputKey {
        case run, commands, workdir, shell, env
        case inheritEnv = "inherit_env"
        case killGrace = "kill_grace"

        public var reading: InputReading {
            switch self {
            case .run, .commands: .shell
            case .shell, .inheritEnv, .killGrace: .asWritten
            case .workdir, .env: .resolved
            }
        }
    }
}
