// The server lives here: routes, auth, policy, upstream client, store, audit, config (DESIGN.md).
// It lands with the Gateway issues; this file keeps the target compiling until then.
internal import StreamCore

/// What this build of the gateway can do; the CLI prints it until `sluice serve` exists.
package enum GatewayStatus {
    package static let summary = "Sluice gateway: StreamCore event-stream codec built; serving lands with the Gateway issues."
}
