import HTTPTypes
import Hummingbird
import NIOCore
import StreamCore

/// `GET /bedrock/inference-profiles[/{id}]`: ListInferenceProfiles and GetInferenceProfile, answered
/// from the models this gateway advertises (Claude Code lists them at start-up in Bedrock mode).
struct BedrockControlPlane: Sendable {
    let region: String

    func respond(to target: BedrockTarget, catalog: ModelCatalog) -> Response {
        switch target {
        case .listInferenceProfiles:
            return self.listInferenceProfiles(catalog)
        case .inferenceProfile(let id):
            return self.inferenceProfile(id: id, catalog: catalog)
        case .model:
            return ErrorShape.bedrock.response(GatewayError(.methodNotAllowed, "GET is not supported here"))
        }
    }

    func listInferenceProfiles(_ catalog: ModelCatalog) -> Response {
        var body = ByteBuffer()
        body.writeStaticString("{\"inferenceProfileSummaries\":[")
        var first = true
        for id in catalog.advertisedModelIDs where ModelCatalog.foundationModelID(id) != id {
            if !first { body.writeStaticString(",") }
            first = false
            self.writeProfile(id: id, into: &body)
        }
        body.writeStaticString("]}")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }

    /// `GetInferenceProfile` for a system profile id this gateway advertises.
    func inferenceProfile(id: String, catalog: ModelCatalog) -> Response {
        guard catalog.advertisedModelIDs.contains(id), ModelCatalog.foundationModelID(id) != id else {
            return ErrorShape.bedrock.response(.notFound("inference profile \(id) is not available through this gateway"))
        }
        var body = ByteBuffer()
        self.writeProfile(id: id, into: &body)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }

    private func writeProfile(id: String, into body: inout ByteBuffer) {
        let foundation = ModelCatalog.foundationModelID(id)
        body.writeStaticString("{\"inferenceProfileName\":")
        body.writeJSONString(id)
        body.writeStaticString(",\"description\":\"Served by Sluice\",\"createdAt\":\"2025-01-01T00:00:00Z\",\"updatedAt\":\"2025-01-01T00:00:00Z\",\"inferenceProfileArn\":")
        body.writeJSONString("arn:aws:bedrock:\(self.region):000000000000:inference-profile/\(id)")
        body.writeStaticString(",\"models\":[{\"modelArn\":")
        body.writeJSONString("arn:aws:bedrock:\(self.region)::foundation-model/\(foundation)")
        body.writeStaticString("}],\"inferenceProfileId\":")
        body.writeJSONString(id)
        body.writeStaticString(",\"status\":\"ACTIVE\",\"type\":\"SYSTEM_DEFINED\"}")
    }
}
