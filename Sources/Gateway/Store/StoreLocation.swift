/// Where the store's file is: `--db`, else `SLUICE_DB`, else the config file's `store.path`, else a
/// per-user data directory (`$XDG_DATA_HOME/sluice/sluice.db`, or `~/.local/share/sluice/sluice.db`).
package enum StoreLocation {
    package static func resolve(flag: String?, environment: [String: String], configuredPath: String?) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let path = environment["SLUICE_DB"], !path.isEmpty { return path }
        if let configuredPath, !configuredPath.isEmpty { return configuredPath }
        if let data = environment["XDG_DATA_HOME"], data.hasPrefix("/") { return "\(data)/sluice/sluice.db" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "."
        return "\(home)/.local/share/sluice/sluice.db"
    }
}
