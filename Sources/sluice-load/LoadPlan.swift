/// Everything a worker needs to drive its streams, resolved from the command line once.
struct LoadPlan: Sendable {
    enum ScenarioDelivery: String, Sendable {
        /// A `[[sim …]]` directive in the prompt: survives the gateway's translation.
        case prompt
        /// The `x-sluice-sim-scenario` header: read by the simulator itself (direct runs).
        case header
    }

    var url: String
    var route: StreamChecker.Route
    var isDirect: Bool
    var body: [UInt8]
    var headers: [String]
    /// Text deltas a complete stream carries: the scenario's `chunks=`.
    var expectedTextDeltas: Int
    var concurrency: Int
    var threads: Int
    /// Streams to start in all; `nil` runs until `duration` ends.
    var totalStreams: Int?
    /// Nanoseconds after the start when no new stream starts; `nil` for a count-only run.
    var durationNanoseconds: UInt64?
    /// The first `concurrency` streams start evenly over this many nanoseconds (a 10,000-stream
    /// run would otherwise open every connection in the same millisecond and overflow the
    /// server's accept backlog).
    var rampUpNanoseconds: UInt64
    var timeoutMilliseconds: Int
    var connectTimeoutMilliseconds: Int
    var model: String
    var scenario: String
    /// Streams share HTTP/2 connections (h2 by ALPN) instead of one HTTP/1.1 connection each.
    var usesHTTP2: Bool
    /// With HTTP/2, at most this many streams share a connection (curl opens another past it).
    var streamsPerConnection: Int
    /// A PEM file of CAs to trust for https, instead of the system's.
    var certificateAuthorityFile: String?

    /// The scenario text with `stamps=1` added when it does not mention stamps.
    static func stampedScenario(_ scenario: String) -> String {
        Self.value(of: "stamps", in: scenario) == nil ? (scenario.isEmpty ? "stamps=1" : scenario + " stamps=1") : scenario
    }

    /// The last value of `key` in `key=value` pairs separated by spaces or commas (the simulator's
    /// syntax; later pairs win, as in the simulator).
    static func value(of key: String, in scenario: String) -> String? {
        var found: String?
        for pair in scenario.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }) {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == key { found = String(parts[1]) }
        }
        return found
    }

    /// `text` as JSON string contents (the prompt holds the scenario directive; only `"` and `\` can
    /// appear in it, but escape control bytes too so any input stays valid JSON).
    static func jsonEscaped(_ text: String) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    escaped += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return escaped
    }

    static func requestBody(route: StreamChecker.Route, model: String, prompt: String) -> [UInt8] {
        let text = Self.jsonEscaped(prompt)
        switch route {
        case .openAI:
            return Array(
                #"{"model":"\#(Self.jsonEscaped(model))","stream":true,"messages":[{"role":"user","content":"\#(text)"}]}"#.utf8
            )
        case .bedrock:
            return Array(#"{"messages":[{"role":"user","content":[{"text":"\#(text)"}]}]}"#.utf8)
        }
    }

    /// A Bedrock model id as one path segment: `:` and `/` (inference-profile ARNs) percent-encoded,
    /// as the AWS SDKs send them.
    static func pathSegment(_ model: String) -> String {
        var segment = ""
        for byte in model.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                segment.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                segment += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return segment
    }
}
