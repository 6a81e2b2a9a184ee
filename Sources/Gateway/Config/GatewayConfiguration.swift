package import Foundation
import NIOSSL
package import StreamCore

/// Everything `sluice serve` needs, validated once at start-up.
///
/// Read from, in increasing priority: built-in defaults, a JSON file (`--config`, `SLUICE_CONFIG`),
/// environment variables (`SLUICE_…`, plus `AWS_BEARER_TOKEN_BEDROCK`, `AWS_REGION`, `AWS_PROFILE`),
/// and command-line flags. A bad file fails start-up naming the file, the key and the problem
/// (unknown keys too: a typo must not silently fall back to a default).
///
/// ## Configuration keys
/// | key | type | default | environment |
/// |---|---|---|---|
/// | `server.host` | string | `127.0.0.1` | `SLUICE_HOST` |
/// | `server.port` | int | `8080` | `SLUICE_PORT` |
/// | `server.maxBodyBytes` | int | 33554432 (32 MiB) | `SLUICE_MAX_BODY_BYTES` |
/// | `server.maxMessages` | int | 10000 | |
/// | `server.maxConcurrentStreams` | int | 16384 (beyond it: 503) | `SLUICE_MAX_STREAMS` |
/// | `server.maxConcurrentStreamsPerIdentity` | int | none (beyond it: 429) | |
/// | `server.drainSeconds` | number | 30: on SIGTERM, open streams get this long to finish | `SLUICE_DRAIN_SECONDS` |
/// | `server.tls.certificateFile`, `server.tls.keyFile` | PEM paths | none (plain HTTP/1.1) | `--tls-cert`, `--tls-key` |
/// | `upstream.endpoint` | URL | `https://bedrock-runtime.<region>.amazonaws.com` | `SLUICE_UPSTREAM` |
/// | `upstream.region` | string | `us-east-1` | `AWS_REGION`, `AWS_DEFAULT_REGION` |
/// | `upstream.apiKey` | secret string | none | `AWS_BEARER_TOKEN_BEDROCK` |
/// | `upstream.profile` | string | none (`AWS_PROFILE`, else `default` when the credentials file has it) | `AWS_PROFILE` |
/// | `upstream.simulator` | bool | true when no credentials are found | `SLUICE_SIMULATOR` |
/// | `upstream.caFile` | PEM path | none: the system's trust roots only | |
/// | `upstreams` | [{`name`, `region`, `endpoint`?, `apiKey`?, `profile`?, `weight`?, `models`?, `caFile`?}] | none: the one `upstream` (not both) | |
/// | `routing.maxAttempts` | int 1…10 | 3: upstream calls per request, failovers included | |
/// | `routing.budgetSeconds` | number | 90: time from the first upstream call to a response head, across attempts | |
/// | `routing.cooldownSeconds` | number | 5: how long a failed upstream is skipped (doubling on repeat) | |
/// | `routing.maxCooldownSeconds` | number | 300: the cooldown's cap | |
/// | `routing.maxRetryAfterWaitSeconds` | number | 2: a `Retry-After` the gateway waits out itself when every upstream refused | |
/// | `models.default` | string | `us.anthropic.claude-sonnet-4-5-20250929-v1:0` | `SLUICE_DEFAULT_MODEL` |
/// | `models.aliases` | object name → Bedrock id | `claude-sonnet`, `claude-haiku`, `claude-opus`, `gpt-4o`, `gpt-4o-mini` | |
/// | `models.allowed` | [string] | the alias targets and the default | |
/// | `models.betas` | [{`model`, `add` or `replace`}] | none: the built-in table of the `anthropic_beta` values each model takes | |
/// | `timeouts.connectSeconds` | number | 10 | |
/// | `timeouts.firstByteSeconds` | number | 60 | `SLUICE_FIRST_BYTE_TIMEOUT` |
/// | `timeouts.idleSeconds` | number | 60 | `SLUICE_IDLE_TIMEOUT` |
/// | `timeouts.requestSeconds` | number | 900 | |
/// | `timeouts.clientIdleSeconds` | number | 30: a client connection that sends nothing (headers or body) this long is closed (slowloris) | |
/// | `timeouts.requestBodySeconds` | number | 60: the most a client may take to send a whole request body (a trickle), else 408 | |
/// | `metrics.token` | secret string | none: `GET /metrics` answers 404 | `SLUICE_METRICS_TOKEN` |
/// | `admin.groups` | [string] | `["admins"]`: the groups whose members may use the console and `/admin/api` | |
/// | `log.level` | string | `info` | `SLUICE_LOG_LEVEL`, `--log-level` |
/// | `log.format` | `json` or `text` | text on a terminal, else `json` | `SLUICE_LOG_FORMAT` |
/// | `inferenceProfiles.allowAnonymous` | bool | false | |
/// | `responses.store` | bool | false: stateless, `previous_response_id` refused | `SLUICE_RESPONSES_STORE` (`1`/`0`) |
/// | `responses.retentionDays` | int 1…365 | 7 | |
/// | `store.path` or `store.url` | a SQLite file or `postgres://user[:password]@host[:port]/db[?sslmode=…]` | `$XDG_DATA_HOME/sluice/sluice.db`, else `~/.local/share/sluice/sluice.db` | `SLUICE_DB` (wins over the file; `--db` wins over both); the password also from `SLUICE_DB_PASSWORD` or `SLUICE_DB_PASSWORD_FILE` |
/// | `store.offlineGraceSeconds` | number | 600: tokens known from memory keep working this long while the store is unreachable | |
/// | `store.onUnavailable` | `closed` or `open` | `closed`: with PostgreSQL, limits refuse (503) while it is unreachable; `open` admits uncounted | |
/// | `oidc` | {`issuer`, `audience`, `groupsClaim`?, `identityClaim`?, `clientId`?, `scopes`?} | none: Sluice tokens only | |
/// | `policies` | [{`source`, `provider`, `models`, `limits`, `require`?}] | without a file: group `admins` may use every model; with a file: only its policies (none: all denied) | |
/// | `prices` | [{`model`, `input`, `output`, `cacheRead`, `cacheWrite`}] USD per million tokens, first matching glob wins | empty (cost 0) | |
///
/// A policy: `source` is `identity:<name>`, `group:<name>` or `*`; `provider` is `default` (the
/// configured upstream); `models` (optional) lists globs over aliases and Bedrock ids, matching with
/// or without a cross-region prefix; `limits` (optional) has `requestsPerMinute`, `tokensPerMinute`,
/// `tokensPerDay` and `budgetUSDPerMonth`.
///
/// A `models.betas` entry changes which `anthropic_beta` values may reach Bedrock for the models its
/// `model` glob matches (the id as called, the foundation id, or an Anthropic name such as
/// `claude-sonnet-4-5`): `add` also accepts the listed values, `replace` accepts exactly them (later
/// `add` entries still add). Entries apply in order over the built-in table, so a beta Bedrock starts
/// taking before Sluice's table knows it needs no new release.
package struct GatewayConfiguration: Sendable {
    package struct Server: Sendable {
        package var host = "127.0.0.1"
        package var port = 8080
        /// Largest request body accepted. 32 MiB covers image-heavy prompts.
        package var maxBodyBytes = 32 * 1024 * 1024
        /// Most entries accepted in an OpenAI request's `messages`.
        package var maxMessages = 10_000
        /// Streams open at once, all callers together; beyond it new ones get a 503.
        package var maxConcurrentStreams = 16_384
        /// Streams open at once per identity; beyond it new ones get a 429. `nil`: no bound.
        package var maxConcurrentStreamsPerIdentity: Int?
        /// How long open streams may run on after SIGTERM before they are ended with an error.
        package var drain: Duration = .seconds(30)
        /// TLS termination (and HTTP/2 by ALPN) when set; plain HTTP/1.1 otherwise.
        package var tls: TLSFiles?
    }

    package struct Upstream: Sendable, CustomStringConvertible {
        /// The name in metrics, audit lines and the ledger (`default` for the `upstream` object).
        package var name = "default"
        /// The share of routing keys among healthy upstreams.
        package var weight = 1.0
        /// Globs over the models this upstream serves; `nil`: all.
        package var models: [String]?
        /// `nil` means "the region's Bedrock Runtime endpoint", or the simulator.
        package var endpoint: URL?
        package var region = "us-east-1"
        /// A Bedrock API key (`Authorization: Bearer`). Never logged: see `description`.
        package var apiKey: String?
        package var profile: String?
        /// `nil`: decide at start-up (simulator when no credentials are found).
        package var useSimulator: Bool?
        /// Certificate authorities (a PEM file) trusted for an `https` endpoint besides the system's:
        /// a proxy or a private endpoint with a certificate of its own authority.
        package var caFile: String?

        package init() {}

        package var description: String {
            "Upstream(name: \(self.name), endpoint: \(self.endpoint?.absoluteString ?? "default"), region: \(self.region), apiKey: \(self.apiKey == nil ? "none" : "<redacted>"), profile: \(self.profile ?? "none"))"
        }
    }

    package struct Timeouts: Sendable {
        package var connect: Duration = .seconds(10)
        package var firstByte: Duration = .seconds(60)
        package var idle: Duration = .seconds(60)
        package var request: Duration = .seconds(900)
        /// A client connection idle this long (no bytes of a request arriving) is closed.
        package var clientIdle: Duration = .seconds(30)
        /// The most a client may take to send a request body, however steadily it trickles.
        package var requestBody: Duration = .seconds(60)
    }

    package struct Log: Sendable {
        package enum Format: String, Sendable { case json, text }
        package var level = "info"
        /// `nil` until the file or the environment says: then text when standard error is a
        /// terminal (a person reading), JSON otherwise (a log collector).
        package var format: Format?

        /// The format in force: the configured one, else by whether standard error is a terminal.
        package func effectiveFormat(standardErrorIsTerminal: Bool) -> Format {
            self.format ?? (standardErrorIsTerminal ? .text : .json)
        }
    }

    package var server = Server()
    /// The one-upstream shorthand (`upstream`), used when `upstreams` is empty.
    package var upstream = Upstream()
    /// `upstreams`: several regions or accounts, routed by affinity with failover.
    package var upstreams: [Upstream] = []
    package var routing = Upstreams.Routing()
    /// `oidc`: IdP tokens accepted beside Sluice tokens.
    package var oidc: OIDCSettings?
    package var models = ModelCatalog()
    package var timeouts = Timeouts()
    /// Answer `GET /bedrock/inference-profiles` without a token (Claude Code with
    /// `CLAUDE_CODE_SKIP_BEDROCK_AUTH=1` sends none there).
    package var inferenceProfilesAllowAnonymous = false
    /// The store's file or `postgres://` URL, from the config file (`--db` and `SLUICE_DB` win; see ``StoreLocation``).
    package var storePath: String?
    /// `store.offlineGraceSeconds`: how long tokens known from memory keep working while the store
    /// cannot be read (then 503, since a revocation made elsewhere may be missing).
    package var storeOfflineGrace: Duration = .seconds(600)
    /// `store.onUnavailable`: whether limits shared in PostgreSQL refuse (`closed`) or admit without
    /// counting (`open`) while it cannot be reached.
    package var limitsWhenUnavailable = LimitsWhenUnavailable.closed
    /// Access rules, default deny. Without a configuration file, the built-in rule lets group
    /// `admins` use every model, so a first run works with one admin token.
    package var policies: [AccessPolicy] = AccessPolicy.builtIn
    package var prices = PriceTable()
    /// The bearer token that may read `GET /metrics`; without one the route does not exist. Never logged.
    package var metricsToken: String?
    /// `admin.groups`: a caller in any of them may use the console and the admin API (an empty list
    /// turns both off for everyone).
    package var adminGroups = ["admins"]
    package var log = Log()
    /// `SLUICE_BETAS=passthrough`: send every `anthropic_beta` value as the client sent it (no
    /// per-model filtering, no retry without refused values).
    package var betasPassthrough = false
    /// `models.betas`, in the file's order.
    package var betaRules: [AnthropicBetaPolicy.Rule] = []
    /// `SLUICE_RESPONSES_KEY`: the secret the Responses API's `encrypted_content` is sealed with, so
    /// every replica (and a restarted one) can open what another sealed. Without it a key is made per
    /// process. Never logged.
    package var responsesKey: String?
    /// `responses.store`: keep Responses API conversations (input and output items, per identity) so
    /// that `previous_response_id` works; off, Sluice is stateless and refuses that field.
    package var responsesStore = false
    /// `responses.retentionDays`: how long a kept response can be continued.
    package var responsesRetentionDays = 7

    package init() {}

    /// The upstreams in force: the `upstreams` list, else the one `upstream`.
    package var effectiveUpstreams: [Upstream] {
        self.upstreams.isEmpty ? [self.upstream] : self.upstreams
    }
}

/// Why the configuration was refused: which source, which key, what is wrong.
package struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    package var source: String
    package var key: String
    package var problem: String

    package var description: String {
        "configuration error in \(self.source), key '\(self.key)': \(self.problem)"
    }
}

extension GatewayConfiguration {
    /// Builds the configuration from a JSON file (optional), the environment and flag overrides.
    ///
    /// - Parameters:
    ///   - file: path of a JSON configuration file, or `nil`.
    ///   - environment: the process environment (passed in, so tests control it).
    ///   - overrides: command-line flags, applied last.
    package static func load(file: String?, environment: [String: String], overrides: Overrides = Overrides()) throws -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        if let file = file ?? environment["SLUICE_CONFIG"] {
            try configuration.apply(file: file)
        }
        try configuration.apply(environment: environment)
        try configuration.apply(overrides)
        return configuration
    }

    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// Command-line flags that override the file and the environment.
    package struct Overrides: Sendable {
        package var host: String?
        package var port: Int?
        package var upstream: String?
        package var region: String?
        package var simulator: Bool?
        package var tlsCertificateFile: String?
        package var tlsKeyFile: String?
        package var logLevel: String?

        package init(
            host: String? = nil, port: Int? = nil, upstream: String? = nil, region: String? = nil, simulator: Bool? = nil,
            tlsCertificateFile: String? = nil, tlsKeyFile: String? = nil, logLevel: String? = nil
        ) {
            self.logLevel = logLevel
            self.host = host
            self.port = port
            self.upstream = upstream
            self.region = region
            self.simulator = simulator
            self.tlsCertificateFile = tlsCertificateFile
            self.tlsKeyFile = tlsKeyFile
        }
    }

    mutating func apply(file path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(source: path, key: "-", problem: "the file cannot be read")
        }
        let root: ConfigJSON
        do {
            root = try JSONDecoder().decode(ConfigJSON.self, from: data)
        } catch {
            throw ConfigurationError(source: path, key: "-", problem: "not valid JSON (\(error))")
        }
        let reader = JSONConfigReader(source: path)
        let object = try reader.object(root, key: "")
        try reader.only(
            object, allowed: ["server", "upstream", "upstreams", "routing", "oidc", "models", "timeouts", "inferenceProfiles", "store", "policies", "prices", "metrics", "admin", "log", "responses"],
            key: ""
        )
        if let server = try reader.optionalObject(object["server"], key: "server") {
            try reader.only(
                server,
                allowed: ["host", "port", "maxBodyBytes", "maxMessages", "maxConcurrentStreams", "maxConcurrentStreamsPerIdentity", "drainSeconds", "tls"],
                key: "server"
            )
            if let count = try reader.optionalInt(server["maxMessages"], key: "server.maxMessages", range: 1...1_000_000) {
                self.server.maxMessages = count
            }
            if let count = try reader.optionalInt(server["maxConcurrentStreams"], key: "server.maxConcurrentStreams", range: 1...1_000_000) {
                self.server.maxConcurrentStreams = count
            }
            if let count = try reader.optionalInt(
                server["maxConcurrentStreamsPerIdentity"], key: "server.maxConcurrentStreamsPerIdentity", range: 1...1_000_000
            ) {
                self.server.maxConcurrentStreamsPerIdentity = count
            }
            if let value = try reader.optionalSeconds(server["drainSeconds"], key: "server.drainSeconds") { self.server.drain = value }
            if let tls = try reader.optionalObject(server["tls"], key: "server.tls") {
                try reader.only(tls, allowed: ["certificateFile", "keyFile"], key: "server.tls")
                guard let certificate = try reader.optionalString(tls["certificateFile"], key: "server.tls.certificateFile"),
                    let key = try reader.optionalString(tls["keyFile"], key: "server.tls.keyFile")
                else {
                    throw ConfigurationError(source: path, key: "server.tls", problem: "needs both certificateFile and keyFile")
                }
                self.server.tls = TLSFiles(certificateChainPath: certificate, privateKeyPath: key)
            }
            if let host = try reader.optionalString(server["host"], key: "server.host") { self.server.host = host }
            if let port = try reader.optionalInt(server["port"], key: "server.port", range: 0...65535) { self.server.port = port }
            if let size = try reader.optionalInt(server["maxBodyBytes"], key: "server.maxBodyBytes", range: 1024...(1 << 30)) {
                self.server.maxBodyBytes = size
            }
        }
        if let upstream = try reader.optionalObject(object["upstream"], key: "upstream") {
            try reader.only(upstream, allowed: ["endpoint", "region", "apiKey", "profile", "simulator", "caFile"], key: "upstream")
            if let endpoint = try reader.optionalString(upstream["endpoint"], key: "upstream.endpoint") {
                self.upstream.endpoint = try Self.endpoint(endpoint, source: path, key: "upstream.endpoint")
            }
            if let region = try reader.optionalString(upstream["region"], key: "upstream.region") { self.upstream.region = region }
            if let key = try reader.optionalString(upstream["apiKey"], key: "upstream.apiKey") { self.upstream.apiKey = key }
            if let profile = try reader.optionalString(upstream["profile"], key: "upstream.profile") { self.upstream.profile = profile }
            if let simulator = try reader.optionalBool(upstream["simulator"], key: "upstream.simulator") { self.upstream.useSimulator = simulator }
            self.upstream.caFile = try Self.caFile(reader.optionalString(upstream["caFile"], key: "upstream.caFile"), source: path, key: "upstream.caFile")
        }
        if let list = try reader.optionalArray(object["upstreams"], key: "upstreams") {
            guard object["upstream"] == nil else {
                throw reader.fail("upstreams", "give either 'upstream' (one upstream) or 'upstreams' (a list), not both")
            }
            guard !list.isEmpty else { throw reader.fail("upstreams", "must list at least one upstream") }
            var names = Set<String>()
            self.upstreams = try list.enumerated().map { index, element in
                let key = "upstreams[\(index)]"
                let entry = try reader.object(element, key: key)
                try reader.only(entry, allowed: ["name", "region", "endpoint", "apiKey", "profile", "weight", "models", "caFile"], key: key)
                var upstream = Upstream()
                guard let name = try reader.optionalString(entry["name"], key: "\(key).name") else { throw reader.fail("\(key).name", "is required") }
                guard name.utf8.count <= 32, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                    throw reader.fail("\(key).name", "must be 1-32 letters, digits, '-', '_' or '.' (it becomes a metric label)")
                }
                guard names.insert(name).inserted else { throw reader.fail("\(key).name", "'\(name)' is used by another upstream") }
                upstream.name = name
                guard let region = try reader.optionalString(entry["region"], key: "\(key).region") else {
                    throw reader.fail("\(key).region", "is required (the upstream's AWS region)")
                }
                guard region.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
                    throw reader.fail("\(key).region", "'\(region)' is not a region name")
                }
                upstream.region = region
                if let endpoint = try reader.optionalString(entry["endpoint"], key: "\(key).endpoint") {
                    upstream.endpoint = try Self.endpoint(endpoint, source: path, key: "\(key).endpoint")
                }
                upstream.apiKey = try reader.optionalString(entry["apiKey"], key: "\(key).apiKey")
                upstream.profile = try reader.optionalString(entry["profile"], key: "\(key).profile")
                upstream.caFile = try Self.caFile(reader.optionalString(entry["caFile"], key: "\(key).caFile"), source: path, key: "\(key).caFile")
                if let weight = try reader.optionalAmount(entry["weight"], key: "\(key).weight") {
                    guard weight > 0, weight <= 1000 else { throw reader.fail("\(key).weight", "must be a number in (0, 1000]") }
                    upstream.weight = weight
                }
                if let models = try reader.optionalStringArray(entry["models"], key: "\(key).models") {
                    guard !models.isEmpty else { throw reader.fail("\(key).models", "must list at least one model glob (leave it out to serve all)") }
                    upstream.models = models
                }
                upstream.useSimulator = false
                return upstream
            }
        }
        if let oidc = try reader.optionalObject(object["oidc"], key: "oidc") {
            try reader.only(oidc, allowed: ["issuer", "audience", "groupsClaim", "identityClaim", "clientId", "scopes"], key: "oidc")
            guard let issuer = try reader.optionalString(oidc["issuer"], key: "oidc.issuer") else { throw reader.fail("oidc.issuer", "is required") }
            guard let url = URL(string: issuer), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty,
                scheme == "https" || (scheme == "http" && Self.isLoopback(host))
            else {
                throw reader.fail("oidc.issuer", "must be an https:// URL (http:// only on a loopback address, for tests), got '\(issuer)'")
            }
            guard let audience = try reader.optionalString(oidc["audience"], key: "oidc.audience") else {
                throw reader.fail("oidc.audience", "is required (the `aud` the IdP puts in tokens for this gateway)")
            }
            var settings = OIDCSettings(issuer: issuer, audience: audience)
            if let claim = try reader.optionalString(oidc["groupsClaim"], key: "oidc.groupsClaim") { settings.groupsClaim = claim }
            if let claim = try reader.optionalString(oidc["identityClaim"], key: "oidc.identityClaim") { settings.identityClaim = claim }
            settings.clientID = try reader.optionalString(oidc["clientId"], key: "oidc.clientId")
            if let scopes = try reader.optionalStringArray(oidc["scopes"], key: "oidc.scopes") { settings.scopes = scopes }
            self.oidc = settings
        }
        if let routing = try reader.optionalObject(object["routing"], key: "routing") {
            try reader.only(
                routing, allowed: ["maxAttempts", "budgetSeconds", "cooldownSeconds", "maxCooldownSeconds", "maxRetryAfterWaitSeconds"], key: "routing"
            )
            if let count = try reader.optionalInt(routing["maxAttempts"], key: "routing.maxAttempts", range: 1...10) { self.routing.maximumAttempts = count }
            if let value = try reader.optionalSeconds(routing["budgetSeconds"], key: "routing.budgetSeconds") { self.routing.budget = value }
            if let value = try reader.optionalSeconds(routing["cooldownSeconds"], key: "routing.cooldownSeconds") { self.routing.cooldown = value }
            if let value = try reader.optionalSeconds(routing["maxCooldownSeconds"], key: "routing.maxCooldownSeconds") {
                self.routing.maximumCooldown = value
            }
            if let value = routing["maxRetryAfterWaitSeconds"], !value.isNull {
                guard case .number(let seconds) = value, seconds >= 0, seconds <= 3600 else {
                    throw reader.fail("routing.maxRetryAfterWaitSeconds", "must be a number of seconds in [0, 3600] (0: never wait)")
                }
                self.routing.maximumRetryAfterWait = .milliseconds(Int64(seconds * 1000))
            }
        }
        if let models = try reader.optionalObject(object["models"], key: "models") {
            try reader.only(models, allowed: ["default", "aliases", "allowed", "betas"], key: "models")
            if let model = try reader.optionalString(models["default"], key: "models.default") { self.models.defaultModel = model }
            if let aliases = try reader.optionalObject(models["aliases"], key: "models.aliases") {
                var table: [String: String] = [:]
                for (alias, target) in aliases {
                    guard case .string(let target) = target, !target.isEmpty else {
                        throw ConfigurationError(source: path, key: "models.aliases.\(alias)", problem: "must be a non-empty Bedrock model id")
                    }
                    table[alias] = target
                }
                self.models.aliases = table
            }
            if let allowed = try reader.optionalStringArray(models["allowed"], key: "models.allowed") { self.models.allowed = allowed }
            if let betas = models["betas"], !betas.isNull {
                guard case .array(let entries) = betas else { throw reader.fail("models.betas", "must be a list of {model, add | replace}") }
                self.betaRules = try entries.enumerated().map { index, entry in
                    let key = "models.betas[\(index)]"
                    let rule = try reader.object(entry, key: key)
                    try reader.only(rule, allowed: ["model", "add", "replace"], key: key)
                    guard let model = try reader.optionalString(rule["model"], key: "\(key).model"), !model.isEmpty else {
                        throw reader.fail("\(key).model", "must name a model or a glob")
                    }
                    let add = try reader.optionalStringArray(rule["add"], key: "\(key).add")
                    let replace = try reader.optionalStringArray(rule["replace"], key: "\(key).replace")
                    switch (add, replace) {
                    case (let add?, nil): return AnthropicBetaPolicy.Rule(model: model, change: .add(add))
                    case (nil, let replace?): return AnthropicBetaPolicy.Rule(model: model, change: .replace(replace))
                    default: throw reader.fail(key, "needs exactly one of add and replace")
                    }
                }
            }
        }
        if let timeouts = try reader.optionalObject(object["timeouts"], key: "timeouts") {
            try reader.only(
                timeouts, allowed: ["connectSeconds", "firstByteSeconds", "idleSeconds", "requestSeconds", "clientIdleSeconds", "requestBodySeconds"],
                key: "timeouts"
            )
            if let value = try reader.optionalSeconds(timeouts["requestBodySeconds"], key: "timeouts.requestBodySeconds") { self.timeouts.requestBody = value }
            if let value = try reader.optionalSeconds(timeouts["clientIdleSeconds"], key: "timeouts.clientIdleSeconds") { self.timeouts.clientIdle = value }
            if let value = try reader.optionalSeconds(timeouts["connectSeconds"], key: "timeouts.connectSeconds") { self.timeouts.connect = value }
            if let value = try reader.optionalSeconds(timeouts["firstByteSeconds"], key: "timeouts.firstByteSeconds") { self.timeouts.firstByte = value }
            if let value = try reader.optionalSeconds(timeouts["idleSeconds"], key: "timeouts.idleSeconds") { self.timeouts.idle = value }
            if let value = try reader.optionalSeconds(timeouts["requestSeconds"], key: "timeouts.requestSeconds") { self.timeouts.request = value }
        }
        if let profiles = try reader.optionalObject(object["inferenceProfiles"], key: "inferenceProfiles") {
            try reader.only(profiles, allowed: ["allowAnonymous"], key: "inferenceProfiles")
            if let allow = try reader.optionalBool(profiles["allowAnonymous"], key: "inferenceProfiles.allowAnonymous") {
                self.inferenceProfilesAllowAnonymous = allow
            }
        }

        if let responses = try reader.optionalObject(object["responses"], key: "responses") {
            try reader.only(responses, allowed: ["store", "retentionDays"], key: "responses")
            if let store = try reader.optionalBool(responses["store"], key: "responses.store") { self.responsesStore = store }
            if let days = try reader.optionalInt(responses["retentionDays"], key: "responses.retentionDays", range: 1...365) {
                self.responsesRetentionDays = days
            }
        }
        if let metrics = try reader.optionalObject(object["metrics"], key: "metrics") {
            try reader.only(metrics, allowed: ["token"], key: "metrics")
            if let token = try reader.optionalString(metrics["token"], key: "metrics.token") {
                guard token.count >= 16 else { throw reader.fail("metrics.token", "must be at least 16 characters") }
                self.metricsToken = token
            }
        }
        if let admin = try reader.optionalObject(object["admin"], key: "admin") {
            try reader.only(admin, allowed: ["groups"], key: "admin")
            if let groups = try reader.optionalStringArray(admin["groups"], key: "admin.groups") { self.adminGroups = groups }
        }
        if let log = try reader.optionalObject(object["log"], key: "log") {
            try reader.only(log, allowed: ["level", "format"], key: "log")
            if let level = try reader.optionalString(log["level"], key: "log.level") {
                guard Self.logLevels.contains(level) else { throw reader.fail("log.level", "must be one of \(Self.logLevels.joined(separator: ", "))") }
                self.log.level = level
            }
            if let text = try reader.optionalString(log["format"], key: "log.format") {
                guard let format = Log.Format(rawValue: text) else { throw reader.fail("log.format", "must be 'json' or 'text'") }
                self.log.format = format
            }
        }
        if let store = try reader.optionalObject(object["store"], key: "store") {
            try reader.only(store, allowed: ["path", "url", "offlineGraceSeconds", "onUnavailable"], key: "store")
            if let text = try reader.optionalString(store["onUnavailable"], key: "store.onUnavailable") {
                guard let mode = LimitsWhenUnavailable(rawValue: text) else { throw reader.fail("store.onUnavailable", "must be 'closed' or 'open'") }
                self.limitsWhenUnavailable = mode
            }
            if let grace = try reader.optionalSeconds(store["offlineGraceSeconds"], key: "store.offlineGraceSeconds") { self.storeOfflineGrace = grace }
            let path = try reader.optionalString(store["path"], key: "store.path")
            let url = try reader.optionalString(store["url"], key: "store.url")
            if path != nil, url != nil { throw reader.fail("store", "has both path and url: give one (a file path or a postgres:// URL)") }
            if let location = path ?? url {
                // Checked here so a bad URL stops start-up naming the file and key, not later.
                do {
                    _ = try StoreAddress.parse(location, environment: [:])
                } catch {
                    throw reader.fail(path != nil ? "store.path" : "store.url", error.description)
                }
                self.storePath = location
            }
        }
        // A file that names no policies grants nothing: missing configuration means deny.
        self.policies = []
        if let policies = try reader.optionalArray(object["policies"], key: "policies") {
            for (index, element) in policies.enumerated() {
                let key = "policies[\(index)]"
                let policy = try reader.object(element, key: key)
                try reader.only(policy, allowed: ["source", "provider", "models", "limits", "require"], key: key)
                var requiresOIDC = false
                if let requirement = try reader.optionalString(policy["require"], key: "\(key).require") {
                    guard requirement == "oidc" else { throw reader.fail("\(key).require", "must be 'oidc' (the rule then applies only to IdP sign-ins)") }
                    requiresOIDC = true
                }
                guard let sourceText = try reader.optionalString(policy["source"], key: "\(key).source"),
                    let source = AccessPolicy.Source(sourceText)
                else {
                    throw reader.fail("\(key).source", "must be 'identity:<name>', 'group:<name>' or '*'")
                }
                let provider = try reader.optionalString(policy["provider"], key: "\(key).provider") ?? AccessPolicy.defaultProvider
                guard provider == AccessPolicy.defaultProvider else {
                    throw reader.fail("\(key).provider", "unknown provider '\(provider)' (only 'default', the configured upstream, exists)")
                }
                let models = try reader.optionalStringArray(policy["models"], key: "\(key).models")
                var limits = AccessPolicy.Limits()
                if let object = try reader.optionalObject(policy["limits"], key: "\(key).limits") {
                    let limitsKey = "\(key).limits"
                    try reader.only(object, allowed: ["requestsPerMinute", "tokensPerMinute", "tokensPerDay", "budgetUSDPerMonth"], key: limitsKey)
                    limits.requestsPerMinute = try reader.optionalInt(object["requestsPerMinute"], key: "\(limitsKey).requestsPerMinute", range: 0...1_000_000_000)
                    limits.tokensPerMinute = try reader.optionalInt(object["tokensPerMinute"], key: "\(limitsKey).tokensPerMinute", range: 0...Int(Int32.max) * 1000)
                    limits.tokensPerDay = try reader.optionalInt(object["tokensPerDay"], key: "\(limitsKey).tokensPerDay", range: 0...Int(Int32.max) * 1000)
                    limits.budgetUSDPerMonth = try reader.optionalAmount(object["budgetUSDPerMonth"], key: "\(limitsKey).budgetUSDPerMonth")
                }
                self.policies.append(AccessPolicy(source: source, provider: provider, models: models, limits: limits, requiresOIDC: requiresOIDC))
            }
        }
        if let prices = try reader.optionalArray(object["prices"], key: "prices") {
            var entries: [(model: String, price: PriceTable.Price)] = []
            for (index, element) in prices.enumerated() {
                let key = "prices[\(index)]"
                let entry = try reader.object(element, key: key)
                try reader.only(entry, allowed: ["model", "input", "output", "cacheRead", "cacheWrite"], key: key)
                guard let model = try reader.optionalString(entry["model"], key: "\(key).model") else {
                    throw reader.fail("\(key).model", "is required (a model glob)")
                }
                guard let input = try reader.optionalAmount(entry["input"], key: "\(key).input"),
                    let output = try reader.optionalAmount(entry["output"], key: "\(key).output")
                else { throw reader.fail(key, "needs 'input' and 'output' prices (USD per million tokens)") }
                let price = PriceTable.Price(
                    input: input, output: output, cacheRead: try reader.optionalAmount(entry["cacheRead"], key: "\(key).cacheRead") ?? 0,
                    cacheWrite: try reader.optionalAmount(entry["cacheWrite"], key: "\(key).cacheWrite") ?? 0
                )
                entries.append((model, price))
            }
            self.prices = PriceTable(entries: entries)
        }
    }

    mutating func apply(environment: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let value = environment[name], !value.isEmpty else { return nil }
            return value
        }
        func int(_ name: String, range: ClosedRange<Int>) throws -> Int? {
            guard let text = value(name) else { return nil }
            guard let number = Int(text), range.contains(number) else {
                throw ConfigurationError(source: "environment", key: name, problem: "must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
            }
            return number
        }
        func seconds(_ name: String) throws -> Duration? {
            guard let text = value(name) else { return nil }
            guard let number = Double(text), number > 0, number <= 86_400 else {
                throw ConfigurationError(source: "environment", key: name, problem: "must be a number of seconds in (0, 86400], got '\(text)'")
            }
            return .milliseconds(Int64(number * 1000))
        }
        if let host = value("SLUICE_HOST") { self.server.host = host }
        if let port = try int("SLUICE_PORT", range: 0...65535) { self.server.port = port }
        if let size = try int("SLUICE_MAX_BODY_BYTES", range: 1024...(1 << 30)) { self.server.maxBodyBytes = size }
        if let count = try int("SLUICE_MAX_STREAMS", range: 1...1_000_000) { self.server.maxConcurrentStreams = count }
        if let drain = try seconds("SLUICE_DRAIN_SECONDS") { self.server.drain = drain }
        if let token = value("SLUICE_METRICS_TOKEN") {
            guard token.count >= 16 else {
                throw ConfigurationError(source: "environment", key: "SLUICE_METRICS_TOKEN", problem: "must be at least 16 characters")
            }
            self.metricsToken = token
        }
        if let mode = value("SLUICE_BETAS") {
            guard mode == "passthrough" || mode == "filter" else {
                throw ConfigurationError(source: "environment", key: "SLUICE_BETAS", problem: "must be 'filter' (the default) or 'passthrough'")
            }
            self.betasPassthrough = mode == "passthrough"
        }
        if let store = value("SLUICE_RESPONSES_STORE") {
            guard store == "1" || store == "0" else {
                throw ConfigurationError(source: "environment", key: "SLUICE_RESPONSES_STORE", problem: "must be 1 or 0, got '\(store)'")
            }
            self.responsesStore = store == "1"
        }
        if let key = value("SLUICE_RESPONSES_KEY") {
            guard key.utf8.count >= 32 else {
                throw ConfigurationError(source: "environment", key: "SLUICE_RESPONSES_KEY", problem: "must be at least 32 characters")
            }
            self.responsesKey = key
        }
        if let level = value("SLUICE_LOG_LEVEL") {
            guard Self.logLevels.contains(level) else {
                throw ConfigurationError(source: "environment", key: "SLUICE_LOG_LEVEL", problem: "must be one of \(Self.logLevels.joined(separator: ", "))")
            }
            self.log.level = level
        }
        if let text = value("SLUICE_LOG_FORMAT") {
            guard let format = Log.Format(rawValue: text) else {
                throw ConfigurationError(source: "environment", key: "SLUICE_LOG_FORMAT", problem: "must be 'json' or 'text'")
            }
            self.log.format = format
        }
        if let endpoint = value("SLUICE_UPSTREAM") {
            guard self.upstreams.isEmpty else {
                throw ConfigurationError(source: "environment", key: "SLUICE_UPSTREAM", problem: "the configuration file lists 'upstreams'; give one or the other")
            }
            self.upstream.endpoint = try Self.endpoint(endpoint, source: "environment", key: "SLUICE_UPSTREAM")
        }
        if let region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") { self.upstream.region = region }
        // The config file's key wins over the environment's generic AWS variable: it was set for Sluice.
        if self.upstream.apiKey == nil, let key = value("AWS_BEARER_TOKEN_BEDROCK") { self.upstream.apiKey = key }
        if self.upstream.profile == nil, let profile = value("AWS_PROFILE") { self.upstream.profile = profile }
        if let simulator = value("SLUICE_SIMULATOR") {
            switch simulator.lowercased() {
            case "1", "true", "yes": self.upstream.useSimulator = true
            case "0", "false", "no": self.upstream.useSimulator = false
            default: throw ConfigurationError(source: "environment", key: "SLUICE_SIMULATOR", problem: "must be true or false, got '\(simulator)'")
            }
        }
        if let model = value("SLUICE_DEFAULT_MODEL") { self.models.defaultModel = model }
        if let timeout = try seconds("SLUICE_FIRST_BYTE_TIMEOUT") { self.timeouts.firstByte = timeout }
        if let timeout = try seconds("SLUICE_IDLE_TIMEOUT") { self.timeouts.idle = timeout }
    }

    mutating func apply(_ overrides: Overrides) throws {
        if let host = overrides.host { self.server.host = host }
        if let port = overrides.port {
            guard (0...65535).contains(port) else {
                throw ConfigurationError(source: "command line", key: "--port", problem: "must be in 0...65535")
            }
            self.server.port = port
        }
        if let upstream = overrides.upstream {
            guard self.upstreams.isEmpty else {
                throw ConfigurationError(source: "command line", key: "--upstream", problem: "the configuration file lists 'upstreams'; give one or the other")
            }
            self.upstream.endpoint = try Self.endpoint(upstream, source: "command line", key: "--upstream")
        }
        if let region = overrides.region { self.upstream.region = region }
        if let simulator = overrides.simulator { self.upstream.useSimulator = simulator }
        if let level = overrides.logLevel {
            guard Self.logLevels.contains(level) else {
                throw ConfigurationError(source: "command line", key: "--log-level", problem: "must be one of \(Self.logLevels.joined(separator: ", "))")
            }
            self.log.level = level
        }
        switch (overrides.tlsCertificateFile, overrides.tlsKeyFile) {
        case (let certificate?, let key?):
            self.server.tls = TLSFiles(certificateChainPath: certificate, privateKeyPath: key)
        case (nil, nil):
            break
        default:
            throw ConfigurationError(source: "command line", key: "--tls-cert/--tls-key", problem: "give both or neither")
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    static func endpoint(_ text: String, source: String, key: String) throws -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty
        else {
            throw ConfigurationError(source: source, key: key, problem: "must be an http:// or https:// URL, got '\(text)'")
        }
        return url
    }

    /// A readable PEM file with at least one certificate (what `caFile` must be), else the reason.
    static func caFile(_ path: String?, source: String, key: String) throws -> String? {
        guard let path else { return nil }
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw ConfigurationError(source: source, key: key, problem: "'\(path)' is not a readable PEM file of certificates")
        }
        guard !certificates.isEmpty else {
            throw ConfigurationError(source: source, key: key, problem: "'\(path)' has no certificate")
        }
        return path
    }
}

/// A parsed JSON value. Decoded with `JSONDecoder`, which keeps `true` and `1` apart (Foundation's
/// `JSONSerialization` on Linux hands both back as `NSNumber`).
private enum ConfigJSON: Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([ConfigJSON])
    case object([String: ConfigJSON])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ConfigJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ConfigJSON].self))
        }
    }
}

/// Typed reads from parsed JSON, each failure naming the key.
private struct JSONConfigReader {
    let source: String

    func fail(_ key: String, _ problem: String) -> ConfigurationError {
        ConfigurationError(source: self.source, key: key.isEmpty ? "(root)" : key, problem: problem)
    }

    func object(_ value: ConfigJSON, key: String) throws -> [String: ConfigJSON] {
        guard case .object(let object) = value else { throw self.fail(key, "must be an object") }
        return object
    }

    func only(_ object: [String: ConfigJSON], allowed: Set<String>, key: String) throws {
        for name in object.keys.sorted() where !allowed.contains(name) {
            let path = key.isEmpty ? name : "\(key).\(name)"
            throw self.fail(path, "unknown key (allowed here: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    func optionalObject(_ value: ConfigJSON?, key: String) throws -> [String: ConfigJSON]? {
        guard let value, !value.isNull else { return nil }
        return try self.object(value, key: key)
    }

    func optionalString(_ value: ConfigJSON?, key: String) throws -> String? {
        guard let value, !value.isNull else { return nil }
        guard case .string(let string) = value, !string.isEmpty else { throw self.fail(key, "must be a non-empty string") }
        return string
    }

    func optionalBool(_ value: ConfigJSON?, key: String) throws -> Bool? {
        guard let value, !value.isNull else { return nil }
        guard case .bool(let bool) = value else { throw self.fail(key, "must be true or false") }
        return bool
    }

    func optionalInt(_ value: ConfigJSON?, key: String, range: ClosedRange<Int>) throws -> Int? {
        guard let value, !value.isNull else { return nil }
        guard case .number(let number) = value, number.rounded() == number, number >= Double(range.lowerBound),
            number <= Double(range.upperBound)
        else { throw self.fail(key, "must be an integer in \(range.lowerBound)...\(range.upperBound)") }
        return Int(number)
    }

    func optionalSeconds(_ value: ConfigJSON?, key: String) throws -> Duration? {
        guard let value, !value.isNull else { return nil }
        guard case .number(let number) = value, number > 0, number <= 86_400 else {
            throw self.fail(key, "must be a number of seconds in (0, 86400]")
        }
        return .milliseconds(Int64(number * 1000))
    }

    func optionalArray(_ value: ConfigJSON?, key: String) throws -> [ConfigJSON]? {
        guard let value, !value.isNull else { return nil }
        guard case .array(let array) = value else { throw self.fail(key, "must be a list") }
        return array
    }

    /// A non-negative amount (prices, budgets).
    func optionalAmount(_ value: ConfigJSON?, key: String) throws -> Double? {
        guard let value, !value.isNull else { return nil }
        guard case .number(let number) = value, number >= 0, number.isFinite else { throw self.fail(key, "must be a number ≥ 0") }
        return number
    }

    func optionalStringArray(_ value: ConfigJSON?, key: String) throws -> [String]? {
        guard let value, !value.isNull else { return nil }
        guard case .array(let array) = value else { throw self.fail(key, "must be a list of strings") }
        return try array.enumerated().map { index, element in
            guard case .string(let string) = element, !string.isEmpty else {
                throw self.fail("\(key)[\(index)]", "must be a non-empty string")
            }
            return string
        }
    }
}

extension ConfigJSON {
    fileprivate var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
