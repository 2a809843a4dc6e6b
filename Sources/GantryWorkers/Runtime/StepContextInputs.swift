import GantryCore

extension StepContext {
    /// The step's `with:` as its kind's typed inputs (`SmokeTestInputs`, `BuildInputs` …),
    /// each value resolved as its key's `InputReading` says: run values and secrets bound,
    /// shell text kept as written for `ShellExpressions`, notification text with secrets as
    /// `***`. A value that does not decode fails the attempt for good, naming its key path
    /// (`with.checks[0].timeout: …`): retrying cannot change what was written.
    public func decodeInputs<Inputs: StepInputs>(_ type: Inputs.Type) throws(StepFailure) -> Inputs {
        do {
            return try InputDecoder(bindings: bindings).decode(type, from: inputs)
        } catch {
            throw StepFailure(error.description, retryable: false)
        }
    }
}
