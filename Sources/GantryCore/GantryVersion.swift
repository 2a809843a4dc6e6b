/// The release of Gantry this binary is: shown by `gantry --version` and in each worker's
/// heartbeat (so that an operator sees which releases a fleet runs during an upgrade).
public enum GantryVersion {
    public static let current = "0.11.0"
}
