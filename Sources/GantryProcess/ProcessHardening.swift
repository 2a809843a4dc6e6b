internal import CSpawn

/// Protections a worker puts on itself before it runs any step.
public enum ProcessHardening {
    /// Makes the worker not dumpable, so that the commands its steps run (as the same user)
    /// cannot read its environment (`/proc/<pid>/environ`: the database and Redis URLs, the
    /// secrets) or attach a debugger to it. Returns the errno when the kernel refused.
    @discardableResult
    public static func makeUndumpable() -> Int32 {
        cspawn_set_undumpable()
    }
}
