internal import NIOCore
internal import StreamCore

/// The control-plane calls Claude Code makes at start-up and for `/context` (CLAUDE_CODE.md §2.1–2.2):
/// ListInferenceProfiles and GetInferenceProfile, for a handful of system-defined Claude profiles.
enum InferenceProfiles {
    struct Profile {
        var id: String
        var name: String
        var description: String
        var sourceRegion: String
        var regions: [String]
        var foundationModel: String
        var type: String
        var arn: String

        init(geography: String, model: String, displayName: String) {
            let regions = geography == "eu" ? ["eu-west-1", "eu-central-1", "eu-west-3"] : ["us-east-1", "us-east-2", "us-west-2"]
            self.id = "\(geography).\(model)"
            self.name = "\(geography.uppercased()) \(displayName)"
            self.description = "Routes requests to \(displayName) in \(regions.joined(separator: ", "))."
            self.sourceRegion = regions[0]
            self.regions = regions
            self.foundationModel = model
            self.type = "SYSTEM_DEFINED"
            self.arn = "arn:aws:bedrock:\(regions[0]):\(InferenceProfiles.account):inference-profile/\(self.id)"
        }

        /// An application inference profile: an ARN that hides its model (Sonnet 4.5 here).
        init(applicationARN: String) {
            let parts = applicationARN.split(separator: ":", omittingEmptySubsequences: false)
            let region = parts.count > 3 && !parts[3].isEmpty ? String(parts[3]) : "us-east-1"
            self.id = String(applicationARN.split(separator: "/").last ?? "")
            self.name = "application profile \(self.id)"
            self.description = "Simulated application inference profile."
            self.sourceRegion = region
            self.regions = [region]
            self.foundationModel = InferenceProfiles.sonnet
            self.type = "APPLICATION"
            self.arn = applicationARN
        }

        func write(into buffer: inout ByteBuffer) {
            buffer.writeStaticString("{\"inferenceProfileName\":")
            buffer.writeJSONString(self.name)
            buffer.writeStaticString(",\"description\":")
            buffer.writeJSONString(self.description)
            buffer.writeStaticString(",\"createdAt\":\"2025-09-29T00:00:00Z\",\"updatedAt\":\"2025-09-29T00:00:00Z\"")
            buffer.writeStaticString(",\"inferenceProfileArn\":")
            buffer.writeJSONString(self.arn)
            buffer.writeStaticString(",\"models\":[")
            for (index, region) in self.regions.enumerated() {
                if index > 0 { buffer.writeStaticString(",") }
                buffer.writeStaticString("{\"modelArn\":")
                buffer.writeJSONString("arn:aws:bedrock:\(region)::foundation-model/\(self.foundationModel)")
                buffer.writeStaticString("}")
            }
            buffer.writeStaticString("],\"inferenceProfileId\":")
            buffer.writeJSONString(self.id)
            buffer.writeStaticString(",\"status\":\"ACTIVE\",\"type\":")
            buffer.writeJSONString(self.type)
            buffer.writeStaticString("}")
        }
    }

    static let account = "123456789012"
    static let sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0"

    static let systemDefined: [Profile] = ["us", "eu"].flatMap { geography in
        [
            Profile(geography: geography, model: sonnet, displayName: "Anthropic Claude Sonnet 4.5"),
            Profile(geography: geography, model: "anthropic.claude-haiku-4-5-20251001-v1:0", displayName: "Anthropic Claude Haiku 4.5"),
            Profile(geography: geography, model: "anthropic.claude-opus-4-5-20251101-v1:0", displayName: "Anthropic Claude Opus 4.5"),
            Profile(geography: geography, model: "anthropic.claude-opus-4-1-20250805-v1:0", displayName: "Anthropic Claude Opus 4.1"),
        ]
    }

    /// `GET /inference-profiles[?type=SYSTEM_DEFINED|APPLICATION]`. Application profiles are only
    /// known when asked for by ARN, so the APPLICATION list is empty.
    static func list(type: String?) -> ByteBuffer {
        let profiles = type == "APPLICATION" ? [] : Self.systemDefined
        var body = ByteBuffer()
        body.writeStaticString("{\"inferenceProfileSummaries\":[")
        for (index, profile) in profiles.enumerated() {
            if index > 0 { body.writeStaticString(",") }
            profile.write(into: &body)
        }
        body.writeStaticString("]}")
        return body
    }

    /// `GET /inference-profiles/{id}`: a system profile by id or ARN, or any
    /// `…:application-inference-profile/…` ARN; `nil` answers 404.
    static func profile(identifier: String) -> Profile? {
        if identifier.contains("does-not-exist") { return nil }
        if let profile = Self.systemDefined.first(where: { $0.id == identifier || $0.arn == identifier }) {
            return profile
        }
        if Self.isApplicationProfileARN(identifier) {
            return Profile(applicationARN: identifier)
        }
        return nil
    }

    static func isApplicationProfileARN(_ identifier: String) -> Bool {
        identifier.hasPrefix("arn:aws") && identifier.contains(":application-inference-profile/")
    }
}
