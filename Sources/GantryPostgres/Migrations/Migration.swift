/// One versioned schema change. Versions only grow; an applied migration is
/// never edited (its checksum is stored and checked).
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String
}

extension Migration {
    /// Every migration, oldest first.
    public static let all: [Migration] = [
        Migration(version: 1, name: "runs, steps and the append-only attempts ledger", sql: Schema.v1),
        Migration(version: 2, name: "pipeline runs, API tokens, approvals and the control-action log", sql: Schema.v2),
        Migration(version: 3, name: "the SHA-256 of each attempt's full log", sql: Schema.v3),
        Migration(version: 4, name: "the deployments view (DORA figures) over the ledger", sql: Schema.v4),
        Migration(version: 5, name: "steps without the per-row foreign-key check on runs", sql: Schema.v5),
        Migration(version: 6, name: "runs without the index of running runs no query uses", sql: Schema.v6),
        Migration(version: 7, name: "environment policies held by the server, and their audited changes", sql: Schema.v7),
        Migration(version: 8, name: "a role for workers: record attempts, read what they run", sql: Schema.v8),
    ]
}

enum Schema {
    static let v1 = """
        CREATE TABLE runs (
            id              uuid PRIMARY KEY,
            -- The installation (Redis namespace) whose dispatchers own the run.
            namespace       text NOT NULL,
            pipeline        text NOT NULL,
            environment     text,
            sha             text,
            submitter       text NOT NULL,
            idempotency_key text,
            status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'canceled')),
            created_at      timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz
        );
        -- Run ids are UUIDv7 (time first), so the primary key already lists runs by age.
        -- Indexes below are partial, so finished runs (nearly all of them) cost nothing in them.
        CREATE UNIQUE INDEX runs_idempotency ON runs (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX runs_status ON runs (status) WHERE status = 'running';

        -- The dispatcher's state of each step: mutable, changed only under a row lock.
        CREATE TABLE steps (
            run_id      uuid NOT NULL REFERENCES runs (id),
            step_id     text NOT NULL,
            namespace   text NOT NULL,
            kind        text NOT NULL,
            status      text NOT NULL CHECK (status IN ('queued', 'retrying', 'succeeded', 'failed', 'canceled')),
            attempt     integer NOT NULL CHECK (attempt >= 1),
            charged     integer NOT NULL DEFAULT 0,
            -- The RetryPolicy as JSON text (not jsonb: it is read on every transition and
            -- never queried inside, so the jsonb conversion would only cost CPU).
            retry       text NOT NULL,
            timeout_ms  bigint NOT NULL CHECK (timeout_ms > 0),
            inputs      text NOT NULL DEFAULT '{}',
            due_at_ms   bigint,
            last_error  text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            PRIMARY KEY (run_id, step_id)
        );
        CREATE INDEX steps_active ON steps (namespace, updated_at) WHERE status IN ('queued', 'retrying');
        CREATE INDEX steps_dead ON steps (finished_at DESC) WHERE status = 'failed';

        -- The ledger: one row per attempt outcome, append-only. The first outcome
        -- recorded for (run, step, attempt) is the current one; a worker that lost
        -- its lease and finishes later is recorded as 'stale' beside it.
        CREATE TABLE attempts (
            seq          bigserial PRIMARY KEY,
            run_id       uuid NOT NULL,
            step_id      text NOT NULL,
            attempt      integer NOT NULL,
            kind         text NOT NULL,
            status       text NOT NULL CHECK (status IN ('succeeded', 'failed', 'timed_out', 'lost', 'stale', 'interrupted', 'canceled', 'invalid')),
            worker       text NOT NULL,
            exit_code    integer,
            error        text,
            retryable    boolean NOT NULL,
            outputs      text NOT NULL DEFAULT '{}',
            log_tail     text,
            started_at   timestamptz NOT NULL,
            finished_at  timestamptz NOT NULL,
            delivery_id  text NOT NULL,
            recorded_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX attempts_current ON attempts (run_id, step_id, attempt) WHERE status <> 'stale';
        CREATE UNIQUE INDEX attempts_stale ON attempts (run_id, step_id, attempt, worker, delivery_id) WHERE status = 'stale';

        CREATE FUNCTION gantry_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            RAISE EXCEPTION 'gantry: % on % refused: the table is append-only', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END
        $fn$;
        CREATE TRIGGER attempts_append_only BEFORE UPDATE OR DELETE ON attempts
            FOR EACH ROW EXECUTE FUNCTION gantry_refuse_change();
        CREATE TRIGGER attempts_no_truncate BEFORE TRUNCATE ON attempts
            FOR EACH STATEMENT EXECUTE FUNCTION gantry_refuse_change();

        -- Grants to the group roles, when the installation has them (docs/operations.md).
        DO $grants$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_writer') THEN
                GRANT SELECT, INSERT, UPDATE ON runs, steps TO gantry_writer;
                GRANT SELECT, INSERT ON attempts TO gantry_writer;
                GRANT USAGE ON SEQUENCE attempts_seq_seq TO gantry_writer;
                GRANT SELECT ON schema_migrations TO gantry_writer;
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_reader') THEN
                GRANT SELECT ON runs, steps, attempts, schema_migrations TO gantry_reader;
            END IF;
        END
        $grants$;
        """

    static let v2 = """
        -- A run is a pipeline: its definition as submitted, its context, and the
        -- RunMachine's phase and outcome. One-step runs (gantry enqueue) use the defaults.
        ALTER TABLE runs
            ADD COLUMN ref               text,
            ADD COLUMN params            text NOT NULL DEFAULT '{}',
            ADD COLUMN definition        text,
            ADD COLUMN definition_sha256 text,
            ADD COLUMN phase             text NOT NULL DEFAULT 'main'
                CHECK (phase IN ('not_started', 'main', 'on_failure', 'finally', 'done')),
            ADD COLUMN outcome           text NOT NULL DEFAULT 'running'
                CHECK (outcome IN ('running', 'succeeded', 'failed', 'canceled')),
            ADD COLUMN stop_reason       text,
            ADD COLUMN timeout_ms        bigint,
            ADD COLUMN deadline_at_ms    bigint,
            ADD COLUMN concurrency_group text,
            ADD COLUMN started_at        timestamptz;
        ALTER TABLE runs DROP CONSTRAINT runs_status_check;
        -- 'waiting': accepted, behind another run of its concurrency group.
        ALTER TABLE runs ADD CONSTRAINT runs_status_check
            CHECK (status IN ('waiting', 'running', 'succeeded', 'failed', 'canceled'));
        UPDATE runs SET phase = 'done', outcome = status WHERE finished_at IS NOT NULL;
        -- The queue of each concurrency group, oldest first (run ids are time-ordered).
        CREATE INDEX runs_group_active ON runs (namespace, concurrency_group, id)
            WHERE concurrency_group IS NOT NULL AND finished_at IS NULL;
        CREATE INDEX runs_deadline ON runs (deadline_at_ms) WHERE finished_at IS NULL AND deadline_at_ms IS NOT NULL;
        -- Promotion gates look for a succeeded run of a SHA in an environment. Both indexes
        -- leave out runs without an environment (gantry enqueue, the benchmark): every index
        -- entry is written again on each of a run's updates.
        CREATE INDEX runs_promotion ON runs (environment, sha) WHERE status = 'succeeded' AND environment IS NOT NULL;
        CREATE INDEX runs_listing ON runs (namespace, environment, id DESC) WHERE environment IS NOT NULL;

        ALTER TABLE steps
            ADD COLUMN section           text NOT NULL DEFAULT 'main' CHECK (section IN ('main', 'on_failure', 'finally')),
            ADD COLUMN position          integer NOT NULL DEFAULT 0,
            ADD COLUMN needs             text[] NOT NULL DEFAULT '{}',
            ADD COLUMN approval_required integer,
            ADD COLUMN approval_timeout_ms bigint,
            ADD COLUMN approval_deadline_ms bigint,
            ADD COLUMN approvers         text[] NOT NULL DEFAULT '{}',
            ADD COLUMN skip_reason       text,
            ADD COLUMN skipped_by_filter boolean NOT NULL DEFAULT false,
            -- Values of the step's ${{ }} expressions, bound when it starts (secrets excluded).
            ADD COLUMN bindings          text NOT NULL DEFAULT '{}';
        ALTER TABLE steps DROP CONSTRAINT steps_status_check;
        ALTER TABLE steps ADD CONSTRAINT steps_status_check
            CHECK (status IN ('pending', 'awaiting_approval', 'queued', 'retrying', 'succeeded', 'failed', 'canceled', 'skipped'));
        CREATE INDEX steps_approval_deadline ON steps (approval_deadline_ms) WHERE status = 'awaiting_approval';

        -- API tokens: only the SHA-256 of a token is stored.
        CREATE TABLE tokens (
            id           uuid PRIMARY KEY,
            namespace    text NOT NULL,
            name         text NOT NULL,
            hash         text NOT NULL UNIQUE,
            roles        text[] NOT NULL,
            environments text[] NOT NULL DEFAULT '{}',
            created_at   timestamptz NOT NULL DEFAULT now(),
            revoked_at   timestamptz
        );
        CREATE UNIQUE INDEX tokens_name ON tokens (namespace, name) WHERE revoked_at IS NULL;

        -- Every approval decision, append-only.
        CREATE TABLE approvals (
            seq        bigserial PRIMARY KEY,
            run_id     uuid NOT NULL REFERENCES runs (id),
            step_id    text NOT NULL,
            decision   text NOT NULL CHECK (decision IN ('approved', 'rejected')),
            approver   text NOT NULL,
            comment    text,
            decided_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX approvals_run ON approvals (run_id, step_id);

        -- Every API action, accepted or refused, with the token's name; append-only.
        CREATE TABLE actions (
            seq         bigserial PRIMARY KEY,
            namespace   text NOT NULL,
            at          timestamptz NOT NULL DEFAULT now(),
            actor       text NOT NULL,
            action      text NOT NULL,
            run_id      uuid,
            environment text,
            accepted    boolean NOT NULL,
            reason      text
        );
        CREATE INDEX actions_run ON actions (run_id) WHERE run_id IS NOT NULL;

        CREATE TRIGGER approvals_append_only BEFORE UPDATE OR DELETE ON approvals
            FOR EACH ROW EXECUTE FUNCTION gantry_refuse_change();
        CREATE TRIGGER approvals_no_truncate BEFORE TRUNCATE ON approvals
            FOR EACH STATEMENT EXECUTE FUNCTION gantry_refuse_change();
        CREATE TRIGGER actions_append_only BEFORE UPDATE OR DELETE ON actions
            FOR EACH ROW EXECUTE FUNCTION gantry_refuse_change();
        CREATE TRIGGER actions_no_truncate BEFORE TRUNCATE ON actions
            FOR EACH STATEMENT EXECUTE FUNCTION gantry_refuse_change();

        DO $grants$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_writer') THEN
                GRANT SELECT, INSERT, UPDATE ON tokens TO gantry_writer;
                GRANT SELECT, INSERT ON approvals, actions TO gantry_writer;
                GRANT USAGE ON SEQUENCE approvals_seq_seq, actions_seq_seq TO gantry_writer;
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_reader') THEN
                GRANT SELECT ON approvals, actions TO gantry_reader;
                GRANT SELECT (id, namespace, name, roles, environments, created_at, revoked_at) ON tokens TO gantry_reader;
            END IF;
        END
        $grants$;
        """

    static let v3 = """
        -- The attempt keeps the last KiB of its log (log_tail); this is the SHA-256
        -- of the whole log as it was streamed (redacted; each line and a newline),
        -- so that a log archived elsewhere can be checked against the ledger.
        ALTER TABLE attempts ADD COLUMN log_sha256 text;
        """

    static let v4 = """
        -- Every deploy attempt, as DORA figures need it: which service went to which
        -- environment at which version, from which version, how, and how it ended.
        -- Read-only, over the append-only ledger; nothing here can be changed.
        -- A rollback of several services (services: [...]) is one row per service.
        CREATE VIEW deployments AS
        SELECT a.run_id, r.namespace, r.pipeline, r.environment, r.sha, a.step_id, a.attempt,
               coalesce(o.item ->> 'service', s.inputs::jsonb ->> 'service') AS service,
               coalesce(o.item ->> 'target', s.inputs::jsonb ->> 'target', 'local') AS target,
               coalesce(s.inputs::jsonb ->> 'action', 'deploy') AS action,
               coalesce(o.item ->> 'strategy', s.inputs::jsonb ->> 'strategy', 'rolling') AS strategy,
               coalesce(o.item ->> 'version', s.inputs::jsonb ->> 'version', s.inputs::jsonb ->> 'image') AS version,
               o.item ->> 'previous_version' AS previous_version,
               a.status AS status,
               o.item ->> 'result' AS result,
               a.error, a.started_at, a.finished_at
        FROM attempts a
        JOIN steps s ON s.run_id = a.run_id AND s.step_id = a.step_id
        JOIN runs r ON r.id = a.run_id
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN a.outputs::jsonb ? 'services' THEN a.outputs::jsonb -> 'services'
                 ELSE jsonb_build_array(a.outputs::jsonb) END) AS o(item)
        WHERE a.kind = 'deploy' AND a.status <> 'stale';

        DO $grants$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_writer') THEN
                GRANT SELECT ON deployments TO gantry_writer;
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_reader') THEN
                GRANT SELECT ON deployments TO gantry_reader;
            END IF;
        END
        $grants$;
        """

    static let v5 = """
        -- A step's run is inserted in the same transaction as the step (RunStore.create,
        -- RunSubmission), and the application's role may not delete runs: the key check on
        -- every step insert guarded against nothing those paths can do, and it was the
        -- largest single cost of creating a run (~9 µs per step: the check locks the run's
        -- row FOR KEY SHARE, which writes the row and the WAL again). Measured with COPY and
        -- INSERT … unnest of 20,000 one-step runs, docs/benchmarks.md.
        ALTER TABLE steps DROP CONSTRAINT IF EXISTS steps_run_id_fkey;
        """

    static let v6 = """
        -- No query of Gantry's reads runs by `status = 'running'` alone (listing filters by
        -- namespace and orders by id, concurrency groups and deadlines have their own partial
        -- indexes, `finished_at IS NULL`), yet every run created wrote an entry into it, and
        -- every entry stayed until a vacuum. Only the benchmark's progress count used it.
        DROP INDEX IF EXISTS runs_status;
        """

    static let v7 = """
        -- Each environment's protection as an admin applied it (gantry environment apply):
        -- the policy file's text, exactly, and its SHA-256. The dispatcher reads it at every
        -- submit; only the owner (admin) role writes it.
        CREATE TABLE environments (
            namespace  text NOT NULL,
            name       text NOT NULL,
            definition text NOT NULL,
            sha256     text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by text NOT NULL,
            PRIMARY KEY (namespace, name)
        );

        -- Every apply: who, when, the definition before (null for a new one) and after. Append-only.
        CREATE TABLE environment_changes (
            seq         bigserial PRIMARY KEY,
            namespace   text NOT NULL,
            environment text NOT NULL,
            actor       text NOT NULL,
            at          timestamptz NOT NULL DEFAULT now(),
            before      text,
            after       text NOT NULL
        );
        CREATE INDEX environment_changes_by_name ON environment_changes (namespace, environment, seq);
        CREATE TRIGGER environment_changes_append_only BEFORE UPDATE OR DELETE ON environment_changes
            FOR EACH ROW EXECUTE FUNCTION gantry_refuse_change();
        CREATE TRIGGER environment_changes_no_truncate BEFORE TRUNCATE ON environment_changes
            FOR EACH STATEMENT EXECUTE FUNCTION gantry_refuse_change();

        -- The worker pool the run's steps go to (its environment's `pool`), as decided at submit;
        -- each step keeps it, so that every enqueue (and the reconciler's) reaches that pool's queue.
        ALTER TABLE runs ADD COLUMN pool text;
        ALTER TABLE steps ADD COLUMN pool text;

        -- Idempotency keys are scoped to the environment: a staging submitter cannot take (or
        -- probe) a key production's CI will use.
        DROP INDEX runs_idempotency;
        CREATE UNIQUE INDEX runs_idempotency ON runs (namespace, coalesce(environment, ''), idempotency_key)
            WHERE idempotency_key IS NOT NULL;

        DO $grants$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_writer') THEN
                GRANT SELECT ON environments, environment_changes TO gantry_writer;
                -- Tokens are an admin's: the role dispatchers and workers hold reads them (to
                -- check a bearer token) and never writes them, so that its URL, if a step ever
                -- read it, could not mint an admin token.
                REVOKE INSERT, UPDATE, DELETE ON tokens FROM gantry_writer;
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_reader') THEN
                GRANT SELECT ON environments, environment_changes TO gantry_reader;
            END IF;
        END
        $grants$;
        """

    /// Workers get a role of their own (`gantry_runner`, granted to the `gantry_worker` login by
    /// `scripts/services.sh`): a worker reads and inserts attempts (its ledger) and reads the
    /// environments' policies (the secrets its pool may resolve), and nothing else. A step that
    /// somehow read its worker's URL could record an attempt, never change a run, a step, an
    /// approval, a token or a policy.
    static let v8 = """
        DO $grants$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_runner') THEN
                GRANT SELECT, INSERT ON attempts TO gantry_runner;
                GRANT USAGE ON SEQUENCE attempts_seq_seq TO gantry_runner;
                GRANT SELECT ON environments TO gantry_runner;
            END IF;
        END
        $grants$;
        """
}
