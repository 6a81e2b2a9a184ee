import Metrics
import StreamCore
import Synchronization

/// Where a stream loop reports what it sees (metrics) and learns that the gateway is shutting
/// down (so a stream cut by the end of the drain is reported as that, not as an upstream fault).
package struct StreamObserver: Sendable {
    let metrics: GatewayMetrics
    let lifecycle: GatewayLifecycle
    private let chunkTimer: Metrics.Timer?
    private let recent: RecentActivity

    package init(metrics: GatewayMetrics, lifecycle: GatewayLifecycle, route: String) {
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.chunkTimer = metrics.chunkTimer(route: route)
        self.recent = metrics.recent
    }

    /// Records what the gateway added to one chunk (see ``GatewayMetrics/chunkTimer(route:)``), for
    /// Prometheus and for the console's last minutes.
    func chunkProcessed(_ duration: Duration) {
        let nanoseconds = duration.totalNanoseconds
        self.chunkTimer?.recordNanoseconds(nanoseconds)
        self.recent.chunkProcessed(nanoseconds: nanoseconds)
    }
}

/// The gateway's shutdown state, shared by the server and the routes.
package final class GatewayLifecycle: Sendable {
    private let drainExpired = Atomic<Bool>(false)

    package init() {}

    /// The drain time after SIGTERM has passed: streams still open are being ended.
    package var isDrainExpired: Bool {
        self.drainExpired.load(ordering: .acquiring)
    }

    package func markDrainExpired() {
        self.drainExpired.store(true, ordering: .releasing)
    }
}
