// Placeholder so the BedrockSimulatorTests target has a source file (SwiftPM warns about an empty
// target); the real tests arrive with the simulator.
import BedrockSimulator
import Testing

struct BedrockSimulatorStatusTests {
    @Test("the status summary names the simulator")
    func summaryNamesTheSimulator() {
        #expect(BedrockSimulatorStatus.summary.contains("simulator"))
    }
}
