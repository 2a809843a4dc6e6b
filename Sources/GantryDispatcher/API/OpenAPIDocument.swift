/// The API's OpenAPI 3.1 description, served at `/openapi.yaml`.
/// `RunAPISecurityTests.badInputIsRefusedWithOneLineNamingThePlace` checks that each
/// route that `APIServer.router()` registers has its path here; add a route to both.
enum OpenAPIDocument {
    static let yaml = """
        openapi: 3.1.0
        info:
          title: Gantry dispatcher API
          version: "1"
          description: |
            Submit and follow deployment runs, decide approval gates, cancel and retry.
            Every /v1 request carries `Authorization: Bearer <token>` (gantry token create).
            Refusals answer 401 (no or unknown token), 403 (the token's roles or environments
            do not allow it), 404 (no such run, or one the token may not read), 409 (the run is
            not in a state for it, or an idempotency key reused for another submit) or 422 (a
            submit gate or the environment's policy said no), always with {"error": "one line"}.
        servers:
          - url: http://127.0.0.1:8080
        security:
          - bearer: []
        paths:
          /healthz:
            get:
              summary: The process is up.
              security: []
              responses:
                "200": { description: ok }
          /readyz:
            get:
              summary: Postgres and Redis are reachable.
              security: []
              responses:
                "200": { description: ready }
                "503": { $ref: "#/components/responses/Error" }
          /openapi.yaml:
            get:
              summary: This document.
              security: []
              responses:
                "200": { description: the OpenAPI document, application/yaml }
          /v1/runs:
            post:
              summary: Submit a pipeline run (role submitter for its environment).
              requestBody:
                required: true
                content:
                  application/json:
                    schema: { $ref: "#/components/schemas/SubmitRequest" }
              responses:
                "201": { description: created, content: { application/json: { schema: { $ref: "#/components/schemas/Run" } } } }
                "200": { description: the run this idempotency key already created, content: { application/json: { schema: { $ref: "#/components/schemas/Run" } } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Error" }
                "403": { $ref: "#/components/responses/Error" }
                "422": { $ref: "#/components/responses/Error" }
            get:
              summary: List runs the token may read, newest first.
              parameters:
                - { name: env, in: query, schema: { type: string } }
                - { name: status, in: query, schema: { type: string, enum: [waiting, running, succeeded, failed, canceled] } }
                - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 1000, default: 50 } }
                - { name: awaiting_approval, in: query, description: "only runs with a gate the token may approve now; each run's waiting_for names the gate", schema: { type: string, enum: ["1", "true"] } }
              responses:
                "200":
                  description: runs without their steps
                  content:
                    application/json:
                      schema:
                        type: object
                        properties:
                          runs: { type: array, items: { $ref: "#/components/schemas/Run" } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Error" }
                "403": { $ref: "#/components/responses/Error" }
          /v1/runs/{id}:
            get:
              summary: A run with its steps, attempts and approvals.
              parameters: [{ $ref: "#/components/parameters/RunID" }]
              responses:
                "200": { description: the run, content: { application/json: { schema: { $ref: "#/components/schemas/Run" } } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Error" }
                "403": { $ref: "#/components/responses/Error" }
                "404": { $ref: "#/components/responses/Error" }
          /v1/runs/{id}/events:
            get:
              summary: Server-sent events; event `run` carries the run (as GET /v1/runs/{id}) each time it changes, until it ends.
              parameters: [{ $ref: "#/components/parameters/RunID" }]
              responses:
                "200": { description: text/event-stream }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Error" }
                "403": { $ref: "#/components/responses/Error" }
                "404": { $ref: "#/components/responses/Error" }
          /v1/runs/{id}/logs:
            get:
              summary: A step's log as text, from the live log (kept a week) or the ledger's excerpt; with follow, streamed until the attempt ends.
              parameters:
                - { $ref: "#/components/parameters/RunID" }
                - { name: step, in: query, required: true, schema: { type: string } }
                - { name: attempt, in: query, schema: { type: integer, minimum: 1 }, description: default the latest }
                - { name: follow, in: query, schema: { type: boolean } }
              responses:
                "200": { description: text/plain, one line per log line }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Error" }
                "403": { $ref: "#/components/responses/Error" }
                "404": { $ref: "#/components/responses/Error" }
          /v1/runs/{id}/approve:
            post:
              summary: Approve an approval gate (role approver for the run's environment; never the submitter when the gate says distinct_from_submitter).
              parameters: [{ $ref: "#/components/parameters/RunID" }]
              requestBody: { required: true, content: { application/json: { schema: { $ref: "#/components/schemas/Decision" } } } }
              responses:
                "200": { description: the run after the decision, content: { application/json: { schema: { $ref: "#/components/schemas/Run" } } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Error" }
                "403": { $ref: "#/components/responses/Error" }
                "404": { $ref: "#/components/responses/Error" }
                "409": { $ref: "#/components/responses/Error" }
          /v1/runs/{id}/reject:
            post:
              summary: Reject an approval gate; the run fails (on_failure and finally run).
              parameters: [{ $ref: "#/components/parameters/RunID" }]
              requestBody: { required: true, content: { application/json: { schema: { $ref: "#/components/schemas/Decision" } } } }
              responses:
                "200": { description: the run after the decision, content: { application/json: { schema: { $ref: "#/components/schemas/Run" } } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Error" }
                "403": { $ref: "#/components/responses/Error" }
                "404": { $ref: "#/components/responses/Error" }
                "409": { $ref: "#/components/responses/Error" }
          /v1/runs/{id}/cancel:
            post:
              summary: Cancel a run; running steps are stopped by their workers, finally steps still run.
              parameters: [{ $ref: "#/components/parameters/RunID" }]
              responses:
                "200": { description: the run, content: { application/json: { schema: { $ref: "#/components/schemas/Run" } } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Error" }
                "403": { $ref: "#/components/responses/Error" }
                "404": { $ref: "#/components/responses/Error" }
                "409": { $ref: "#/components/responses/Error" }
          /v1/runs/{id}/retry:
            post:
              summary: Re-run the failed steps of a failed run (or one of them) and what they held up, as new attempts.
              parameters: [{ $ref: "#/components/parameters/RunID" }]
              requestBody: { content: { application/json: { schema: { type: object, properties: { step: { type: string } } } } } }
              responses:
                "200": { description: the run, content: { application/json: { schema: { $ref: "#/components/schemas/Run" } } } }
                "400": { $ref: "#/components/responses/Error" }
                "401": { $ref: "#/components/responses/Error" }
                "403": { $ref: "#/components/responses/Error" }
                "404": { $ref: "#/components/responses/Error" }
                "409": { $ref: "#/components/responses/Error" }
          /v1/environments:
            get:
              summary: The environments with a policy that the token may read (docs/environments.md).
              responses:
                "200":
                  description: policies
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [environments]
                        properties:
                          environments: { type: array, items: { $ref: "#/components/schemas/Environment" } }
                "401": { $ref: "#/components/responses/Error" }
          /v1/environments/{name}:
            get:
              summary: One environment's policy; `policy` is null when it has none (its runs follow their files' gates only).
              parameters: [{ name: name, in: path, required: true, schema: { type: string } }]
              responses:
                "200": { description: the environment, content: { application/json: { schema: { $ref: "#/components/schemas/Environment" } } } }
                "401": { $ref: "#/components/responses/Error" }
                "404": { $ref: "#/components/responses/Error" }
        components:
          securitySchemes:
            bearer: { type: http, scheme: bearer }
          parameters:
            RunID: { name: id, in: path, required: true, schema: { type: string, format: uuid } }
          responses:
            Error:
              description: a refusal or failure, in one line
              content:
                application/json:
                  schema:
                    type: object
                    required: [error]
                    properties:
                      error: { type: string }
                      details: { type: array, items: { type: string } }
          schemas:
            Environment:
              type: object
              required: [name, policy]
              properties:
                name: { type: string }
                definition: { type: string, description: the policy file as applied }
                sha256: { type: string }
                updated_at: { type: string }
                updated_by: { type: string, description: OS user@host of the admin who applied it }
                summary: { type: string }
                policy: { type: [object, "null"], description: "the policy as the server reads it: protection, groups, secrets, inherit_env, pool, concurrency, targets" }
            SubmitRequest:
              type: object
              required: [pipeline, sha]
              properties:
                pipeline: { type: string, description: the pipeline YAML, stored with the run with its SHA-256 }
                pipeline_file: { type: string, description: its file name, used in error messages }
                environment: { type: string, description: required when the pipeline names none; must match it otherwise }
                sha: { type: string, pattern: "^[0-9a-fA-F]{7,64}$" }
                ref: { type: string }
                confirm: { type: string, description: must equal gates.confirm exactly }
                changed_files: { type: array, items: { type: string }, description: for when.paths filters; omitted means no step is skipped by paths }
                params: { type: object, additionalProperties: { type: string } }
                idempotency_key: { type: string, description: the same key returns the same run }
            Decision:
              type: object
              required: [step]
              properties:
                step: { type: string }
                comment: { type: string }
            Run:
              type: object
              properties:
                id: { type: string }
                pipeline: { type: string }
                environment: { type: [string, "null"] }
                sha: { type: [string, "null"] }
                ref: { type: [string, "null"] }
                submitter: { type: string, description: the submitting token's name }
                status: { type: string, enum: [waiting, running, succeeded, failed, canceled] }
                phase: { type: string, enum: [not_started, main, on_failure, finally, done] }
                definition_sha256: { type: [string, "null"] }
                created_at: { type: string, format: date-time }
                started_at: { type: [string, "null"], format: date-time }
                finished_at: { type: [string, "null"], format: date-time }
                duration_ms: { type: [integer, "null"] }
                waiting_for: { type: [string, "null"], description: "e.g. behind run R in group production" }
                stop_reason: { type: [string, "null"] }
                cleanup_failed: { type: [array, "null"], items: { type: string }, description: "finally and on_failure steps that failed (null when none did)" }
                steps: { type: array, items: { $ref: "#/components/schemas/Step" } }
            Step:
              type: object
              properties:
                id: { type: string }
                kind: { type: string }
                section: { type: string, enum: [main, on_failure, finally] }
                needs: { type: array, items: { type: string } }
                status: { type: string, enum: [pending, awaiting_approval, queued, running, retrying, succeeded, failed, canceled, skipped], description: "running: a worker holds the attempt (worker, started_at)" }
                worker: { type: [string, "null"], description: "the worker running the step now" }
                started_at: { type: [string, "null"], format: date-time, description: "when that worker took the attempt" }
                attempt: { type: integer }
                waiting_for: { type: [string, "null"], description: "e.g. waiting for approval (0/2)" }
                skip_reason: { type: [string, "null"] }
                last_error: { type: [string, "null"] }
                approvals:
                  type: [object, "null"]
                  properties:
                    required: { type: integer }
                    approved_by: { type: array, items: { type: string }, description: "every approver of the gate's current round, in order" }
                    state: { type: [string, "null"], enum: [pending, approved, rejected, timed_out, canceled, null] }
                    deadline: { type: [string, "null"], format: date-time, description: "when the gate stops waiting, once reached" }
                    decisions:
                      type: array
                      items:
                        type: object
                        properties:
                          decision: { type: string, enum: [approved, rejected] }
                          by: { type: string }
                          comment: { type: [string, "null"] }
                          at: { type: string, format: date-time }
                attempts: { type: array, items: { $ref: "#/components/schemas/Attempt" } }
            Attempt:
              type: object
              properties:
                attempt: { type: integer }
                status: { type: string, enum: [succeeded, failed, timed_out, lost, stale, interrupted, canceled, invalid] }
                worker: { type: string }
                exit_code: { type: [integer, "null"] }
                error: { type: [string, "null"] }
                started_at: { type: string, format: date-time }
                finished_at: { type: string, format: date-time }
                duration_ms: { type: number }
                outputs: { type: object }
                log_sha256: { type: [string, "null"], description: "SHA-256 (hex) of the attempt's whole redacted log, each line followed by a newline" }
        """
}
