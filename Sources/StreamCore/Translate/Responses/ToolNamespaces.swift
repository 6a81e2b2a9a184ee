/// The Responses API's `namespace` tools, flattened for Bedrock.
///
/// A namespace groups function tools under a name the model sees (Codex CLI sends its sub-agent tools
/// as `{"type":"namespace","name":"multi_agent_v1","tools":[…]}`). Bedrock's tools are flat, with names
/// matching `^[a-zA-Z0-9_-]{1,64}$`, so `lookup` in namespace `crm` is sent as the tool `crm__lookup`;
/// a call of it comes back to the client as `"name":"lookup","namespace":"crm"`, and a `function_call`
/// input item naming a namespace goes to Bedrock under the flat name again.
package struct ToolNamespaces: Sendable {
    private struct Member: Sendable {
        var namespace: String
        var name: String
    }

    private var members: [String: Member] = [:]

    package init() {}

    package var isEmpty: Bool { self.members.isEmpty }

    /// The Bedrock tool name for `name` in `namespace`.
    package static func flatName(namespace: String, name: String) -> String {
        namespace + "__" + name
    }

    mutating func add(namespace: String, name: String) -> String {
        let flat = Self.flatName(namespace: namespace, name: name)
        self.members[flat] = Member(namespace: namespace, name: name)
        return flat
    }

    /// For a Bedrock tool name that is a namespace member: the JSON that follows `"name":"` in the
    /// client's function call, up to (not including) its closing quote, i.e. `lookup","namespace":"crm`.
    /// Nil for any other name, which is written as it came.
    func nameFragment(forBedrockName name: String) -> [UInt8]? {
        guard let member = self.members[name] else { return nil }
        return ResponsesJSON.escaped(member.name) + Array("\",\"namespace\":\"".utf8) + ResponsesJSON.escaped(member.namespace)
    }

    /// The same for the name's bytes as Bedrock's stream spelled them; no work without namespaces.
    func nameFragment(forBedrockName name: UnsafeRawBufferPointer) -> [UInt8]? {
        guard !self.members.isEmpty else { return nil }
        return self.nameFragment(forBedrockName: String(decoding: name, as: UTF8.self))
    }
}
