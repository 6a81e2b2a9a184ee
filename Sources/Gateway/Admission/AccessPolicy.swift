/// One rule of the access configuration: who (`source`) may use which models of which provider,
/// under which limits. Rules only grant: with none matching, the answer is no (default deny).
package struct AccessPolicy: Sendable, Hashable {
    package enum Source: Sendable, Hashable, CustomStringConvertible {
        case identity(String)
        case group(String)
        case everyone

        /// Parses `identity:<name>`, `group:<name>` or `*`.
        package init?(_ text: String) {
            if text == "*" {
                self = .everyone
            } else if text.hasPrefix("identity:"), text.count > "identity:".count {
                self = .identity(String(text.dropFirst("identity:".count)))
            } else if text.hasPrefix("group:"), text.count > "group:".count {
                self = .group(String(text.dropFirst("group:".count)))
            } else {
                return nil
            }
        }

        package var description: String {
            switch self {
            case .identity(let name): "identity:\(name)"
            case .group(let name): "group:\(name)"
            case .everyone: "*"
            }
        }

        func matches(_ caller: Caller) -> Bool {
            switch self {
            case .identity(let name): caller.identity == name
            case .group(let name): caller.groups.contains(name)
            case .everyone: true
            }
        }
    }

    /// Per-identity or per-group ceilings; `nil` means no limit of that kind.
    package struct Limits: Sendable, Hashable {
        package var requestsPerMinute: Int?
        package var tokensPerMinute: Int?
        package var tokensPerDay: Int?
        package var budgetUSDPerMonth: Double?

        package init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, tokensPerDay: Int? = nil, budgetUSDPerMonth: Double? = nil) {
            self.requestsPerMinute = requestsPerMinute
            self.tokensPerMinute = tokensPerMinute
            self.tokensPerDay = tokensPerDay
            self.budgetUSDPerMonth = budgetUSDPerMonth
        }

        package var isEmpty: Bool {
            self.requestsPerMinute == nil && self.tokensPerMinute == nil && self.tokensPerDay == nil && self.budgetUSDPerMonth == nil
        }
    }

    /// The only provider today: the configured upstream and its credentials.
    package static let defaultProvider = "default"

    package var source: Source
    package var provider: String
    /// Globs over model names; `nil` allows every model.
    package var models: [String]?
    package var limits: Limits
    /// `"require": "oidc"`: the rule applies only to callers signed in with the IdP, not to
    /// holders of Sluice tokens.
    package var requiresOIDC: Bool

    package init(
        source: Source, provider: String = Self.defaultProvider, models: [String]? = nil, limits: Limits = Limits(), requiresOIDC: Bool = false
    ) {
        self.source = source
        self.provider = provider
        self.models = models
        self.limits = limits
        self.requiresOIDC = requiresOIDC
    }

    /// Whether the rule is about this caller: its source names them, and they signed in as it requires.
    func applies(to caller: Caller) -> Bool {
        self.source.matches(caller) && self.provider == Self.defaultProvider && (!self.requiresOIDC || caller.issuer != nil)
    }

    /// With no configuration file: members of `admins` may use every model, nobody else anything.
    package static let builtIn = [AccessPolicy(source: .group("admins"))]
}

/// Who a limit is counted for: one identity, or everyone in a group together.
package enum LimitScope: Sendable, Hashable, CustomStringConvertible {
    case identity(String)
    case group(String)

    package var description: String {
        switch self {
        case .identity(let name): "identity \(name)"
        case .group(let name): "group \(name)"
        }
    }
}

/// A policy's answer for one request.
package enum PolicyVerdict: Sendable, Hashable {
    /// Allowed; these limits apply (each counted for its scope).
    case allowed(limits: [LimitScope: AccessPolicy.Limits])
    case denied(reason: String)
}

/// The configured rules, evaluated per request.
package struct PolicySet: Sendable {
    package var policies: [AccessPolicy]
    package var catalog: ModelCatalog

    package init(policies: [AccessPolicy], catalog: ModelCatalog) {
        self.policies = policies
        self.catalog = catalog
    }

    /// Whether `caller` may use the model asked for as `requested` (an alias or an id), which
    /// resolves to the Bedrock id `resolved`.
    ///
    /// Every rule whose source matches the caller and whose allowlist admits the model grants
    /// access; the limits of all of them apply: an identity rule's and a `*` rule's are counted
    /// for the caller, a group rule's for the whole group.
    package func evaluate(_ caller: Caller, requested: String, resolved: String) -> PolicyVerdict {
        let applicable = self.policies.filter { $0.applies(to: caller) }
        guard !applicable.isEmpty else {
            return .denied(reason: "no policy grants identity '\(caller.identity)' access to this gateway")
        }
        let granting = applicable.filter { policy in
            guard let models = policy.models else { return true }
            return models.contains { self.matches(pattern: $0, requested: requested, resolved: resolved) }
        }
        guard !granting.isEmpty else {
            return .denied(reason: "no policy allows identity '\(caller.identity)' to use model '\(requested)'")
        }
        var limits: [LimitScope: AccessPolicy.Limits] = [:]
        for policy in granting where !policy.limits.isEmpty {
            let scope: LimitScope
            switch policy.source {
            case .identity(let name): scope = .identity(name)
            case .group(let name): scope = .group(name)
            case .everyone: scope = .identity(caller.identity)
            }
            limits[scope] = Self.tightest(limits[scope], policy.limits)
        }
        return .allowed(limits: limits)
    }

    /// Whether a caller has any policy at all (for routes that name no model, like model lists).
    package func admits(_ caller: Caller) -> Bool {
        self.policies.contains { $0.applies(to: caller) }
    }

    /// An allowlist entry matches the name asked for, the resolved id, either without its
    /// cross-region prefix, and, when the entry is an alias, the id it stands for.
    func matches(pattern: String, requested: String, resolved: String) -> Bool {
        var patterns = [pattern]
        if let target = self.catalog.aliases[pattern] { patterns.append(target) }
        let candidates = [requested, resolved]
        for pattern in patterns {
            let barePattern = ModelCatalog.foundationModelID(pattern)
            for candidate in candidates {
                if Glob.matches(pattern, candidate) { return true }
                if Glob.matches(barePattern, ModelCatalog.foundationModelID(candidate)) { return true }
            }
        }
        return false
    }

    static func tightest(_ a: AccessPolicy.Limits?, _ b: AccessPolicy.Limits) -> AccessPolicy.Limits {
        guard let a else { return b }
        func minimum<T: Comparable>(_ x: T?, _ y: T?) -> T? {
            switch (x, y) {
            case (let x?, let y?): Swift.min(x, y)
            case (let x?, nil): x
            case (nil, let y): y
            }
        }
        return AccessPolicy.Limits(
            requestsPerMinute: minimum(a.requestsPerMinute, b.requestsPerMinute), tokensPerMinute: minimum(a.tokensPerMinute, b.tokensPerMinute),
            tokensPerDay: minimum(a.tokensPerDay, b.tokensPerDay), budgetUSDPerMonth: minimum(a.budgetUSDPerMonth, b.budgetUSDPerMonth)
        )
    }
}

/// Shell-style globs: `*` any run of characters, `?` one character, everything else literal.
package enum Glob {
    package static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.utf8)
        let t = Array(text.utf8)
        var pi = 0
        var ti = 0
        var star = -1
        var mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == UInt8(ascii: "?") || p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if pi < p.count, p[pi] == UInt8(ascii: "*") {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
