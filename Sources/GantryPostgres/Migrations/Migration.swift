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
}
