import Dispatch
import GatewayFixtures

#if canImport(Glibc)
import Glibc
#endif

// The in-process end-to-end stream and the token check (Benchmarks/GatewayFixtures) as a plain process,
// for profilers and for Benchmarks/instructions.sh (callgrind): ROUNDS whole 1,000-delta streams
// through one loop, or ROUNDS token checks.
//   chat        ConverseStream → OpenAI SSE (`POST /v1/chat/completions`)
//   passthrough ConverseStream verified and forwarded (`/bedrock/…/converse-stream`)
//   invoke      InvokeModelWithResponseStream verified and forwarded (Claude Code's route)
//   token       ROUNDS known-token checks (Benchmarks/GatewayFixtures/TokenFixture.swift)
//   unknown     ROUNDS unknown-token checks (each asks the SQLite store)
//   perf record -e cpu-clock -g .build-bench/release/GatewayProfile chat 200
//
// The main thread waits on a semaphore rather than being an async main: an async main parks it in
// libdispatch's sigsuspend loop, which valgrind 3.19 crashes on at exit. The task is detached: top-level
// code is on the main actor, whose thread is the one waiting.
let arguments = CommandLine.arguments
let mode = arguments.count > 1 ? arguments[1] : "chat"
let rounds = arguments.count > 2 ? Int(arguments[2]) ?? 200 : 200
let done = DispatchSemaphore(value: 0)
Task.detached {
    do {
        switch mode {
        case "token", "unknown":
            let tokens = try await TokenFixture.open()
            for _ in 0..<rounds {
                if mode == "token" { try await tokens.checkKnown() } else { try await tokens.checkUnknown() }
            }
            try await tokens.close()
            print("\(mode): \(rounds) checks")
        default:
            let fixture = try mode == "invoke" ? RelayFixture.invoke() : RelayFixture.converse()
            for _ in 0..<rounds {
                switch mode {
                case "passthrough": try await fixture.relayBedrock(invoke: false)
                case "invoke": try await fixture.relayBedrock(invoke: true)
                default: try await fixture.relayChatCompletion()
                }
            }
            print("\(mode): \(rounds) streams of \(RelayFixture.deltas) deltas")
        }
    } catch {
        print("\(mode) failed: \(error)")
        exit(1)
    }
    done.signal()
}
done.wait()
