import AsyncHTTPClient
import Foundation
import Gateway
import Logging
import NIOCore
import NIOHTTP1
import StreamCore
import Synchronization
import Testing

/// The `sluice` binary built by `swift build --product sluice`, run as a separate process.
struct SluiceProcess {
    static var binary: URL {
        // Tests/GatewayTests/<this file> → the package root.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/sluice")
    }

    /// Runs a CLI command to completion; returns its standard output.
    static func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await Self.offPool {
            let process = Process()
            process.executableURL = Self.binary
            process.arguments = arguments
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
    }

    /// Runs blocking `work` (waiting for a child process) on a thread of its own. On the task pool it
    /// would hold one of its threads (as many as cores: two here) for as long as the child runs, and
    /// the in-process gateways and simulators of the suites running beside need them: a pool with
    /// no thread free runs none of their tasks, while their time limits still fire on NIO's loops
    /// (see `decodeStream` in StreamCoreTests for what that did).
    static func offPool<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    let process: Process
    let port: Int
    /// Everything the server wrote to standard error (JSON log and audit lines).
    let log: LogCapture

    final class LogCapture: Sendable {
        let text = Mutex("")
        var lines: [String] { self.text.withLock { $0 }.split(separator: "\n").map(String.init) }
    }

    /// Starts `sluice serve` with the built-in simulator on a free port and waits until it listens.
    static func serve(database: String, arguments: [String] = [], environment extra: [String: String] = [:]) async throws -> SluiceProcess {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = ["serve", "--port", "0", "--simulator", "--db", database, "--log-level", "notice"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["SLUICE_CONFIG"] = nil
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        let log = LogCapture()
        // Keep draining: audit lines go to standard error, and a full pipe would stall the server.
        errors.fileHandleForReading.readabilityHandler = { handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            log.text.withLock { $0 += text }
        }
        try process.run()
        // Generous: under `swift test` on 2 cores, 50 suites start at once and a debug binary can take tens of
        // seconds to reach its listen line. The log is read once more after every sleep, so a line that arrived
        // while this task waited for a thread is never missed at the deadline.
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            let text = log.text.withLock { $0 }
            if let range = text.range(of: #""server.address":"http://127.0.0.1:"#) {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits), port > 0 { return SluiceProcess(process: process, port: port, log: log) }
            }
            if !process.isRunning || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw CrashTestError(message: "sluice serve did not start: \(log.text.withLock { $0 })")
    }

    func signal(_ number: Int32) {
        Foundation.kill(self.process.processIdentifier, number)
    }

    /// Waits for the process to exit (at most `timeout`); its exit status, or nil if it did not.
    func waitForExit(timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while self.process.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        return self.process.isRunning ? nil : self.process.terminationStatus
    }

    func kill() {
        Foundation.kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }
}

/// What the load loop saw: requests started, and streams that arrived whole, per identity.
final class LoadCounters: Sendable {
    let started = Mutex(0)
    let killed = Mutex(false)
    let completed = Mutex<[String: Int]>([:])
}

struct CrashTestError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}

@Suite(.serialized)
struct CrashRecoveryTests {
    @Test(
        "sluice token CLI: create prints the token last, list shows it, revoke revokes it",
        .enabled(if: FileManager.default.isExecutableFile(atPath: SluiceProcess.binary.path), "run `swift build --product sluice` first")
    )
    func tokenCLI() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.path("cli.db")
        let created = try await SluiceProcess.run(["token", "create", "--identity", "jane@corp", "--group", "engineering", "--ttl", "30d", "--db", database])
        #expect(created.status == 0)
        let token = String(try #require(created.output.split(separator: "\n").last))
        #expect(token.hasPrefix("sk-sluice-"))
        let json = try await SluiceProcess.run(["token", "create", "--identity", "bot", "--ttl", "1h", "--json", "--db", database])
        let lines = json.output.split(separator: "\n")
        #expect(lines.count == 2)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(String(lines[0]).utf8)) as? [String: Any])
        #expect(object["identity"] as? String == "bot")
        #expect(lines.last?.hasPrefix("sk-sluice-") == true)
        let list = try await SluiceProcess.run(["token", "list", "--db", database])
        #expect(list.output.contains("jane@corp"))
        #expect(list.output.contains(String(token.dropFirst("sk-sluice-".count).prefix(8))))
        #expect(!list.output.contains(token))
        #expect(try await SluiceProcess.run(["token", "revoke", "jane@corp", "--db", database]).status == 0)
        #expect(try await SluiceProcess.run(["token", "list", "--db", database]).output.contains("revoked"))
        #expect(try await SluiceProcess.run(["token", "revoke", "nobody", "--db", database]).status != 0)
        #expect(try await SluiceProcess.run(["token", "create", "--identity", "x", "--ttl", "soon", "--db", database]).status != 0)
        #expect(try await SluiceProcess.run(["token", "create", "--identity", "a\tb", "--db", database]).status != 0)
        #expect(try await SluiceProcess.run(["token", "create", "--identity", "x", "--group", "eng\nops", "--db", database]).status != 0)
    }

    @Test(
        "kill -9 under load loses no completed request's usage row",
        .enabled(if: FileManager.default.isExecutableFile(atPath: SluiceProcess.binary.path), "run `swift build --product sluice` first")
    )
    func killUnderLoad() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.path("crash.db")
        var tokens: [String: String] = [:]
        for identity in ["alice", "bob", "carol"] {
            let created = try await SluiceProcess.run(["token", "create", "--identity", identity, "--group", "admins", "--ttl", "1d", "--db", database])
            tokens[identity] = String(try #require(created.output.split(separator: "\n").last))
        }
        let server = try await SluiceProcess.serve(database: database)
        let completed = LoadCounters()
        try await HTTPClient.withHTTPClient { client in
            await withTaskGroup(of: Void.self) { group in
                // Twelve workers stream short completions back to back; four long streams (30 s
                // each) are certainly in flight when the server dies. The kill waits for load
                // rather than a fixed time: on a busy CI host the first second can go to start-up.
                for worker in 0..<16 {
                    let identity = ["alice", "bob", "carol"][worker % 3]
                    let token = tokens[identity] ?? ""
                    group.addTask {
                        let stopAt = ContinuousClock.now + .seconds(40)
                        while ContinuousClock.now < stopAt, !completed.killed.withLock({ $0 }) {
                            var request = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/v1/chat/completions")
                            request.method = .POST
                            request.headers.add(name: "Content-Type", value: "application/json")
                            request.headers.add(name: "Authorization", value: "Bearer \(token)")
                            let directive = worker < 12 ? "[[sim chunks=8 gap_ms=5]]" : "[[sim chunks=1500 gap_ms=20]]"
                            request.body = .bytes(ByteBuffer(string: chatRequest("load \(directive)")))
                            completed.started.withLock { $0 += 1 }
                            do {
                                let response = try await client.execute(request, timeout: .seconds(60))
                                guard response.status == .ok else { return }
                                let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
                                // Complete means the whole stream arrived, [DONE] included.
                                guard String(buffer: body).hasSuffix("data: [DONE]\n\n") else { return }
                                completed.completed.withLock { $0[identity, default: 0] += 1 }
                            } catch {
                                return
                            }
                        }
                    }
                }
                group.addTask {
                    // At least 1.5 s of load, and at least ten completed streams (for 30 s at most).
                    try? await Task.sleep(for: .milliseconds(1500))
                    let giveUp = ContinuousClock.now + .seconds(30)
                    while ContinuousClock.now < giveUp, completed.completed.withLock({ $0.values.reduce(0, +) }) < 10 {
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                    completed.killed.withLock { $0 = true }
                    server.kill()
                }
            }
        }
        let counts = completed.completed.withLock { $0 }
        #expect(counts.values.reduce(0, +) >= 10, "too little load before the kill: \(counts)")

        // Restart on the same file: it opens after the crash, and the ledger has every completed request.
        let restarted = try await SluiceProcess.serve(database: database)
        defer {
            restarted.process.terminate()
            restarted.process.waitUntilExit()
        }
        let store = try await SQLiteStore.open(path: database, logger: Logger(label: "sluice-test"))
        let rows = try await store.usage(since: .distantPast)
        try await store.close()
        for (identity, count) in counts {
            let finished = rows.filter { $0.identity == identity && $0.finishReason == "stop" }
            #expect(finished.count >= count, "\(identity): \(count) completed, \(finished.count) rows")
        }
        #expect(rows.count <= completed.started.withLock { $0 })
        // The CLI reads the ledger while the restarted server has the file open.
        let usage = try await SluiceProcess.run(["usage", "--by", "identity", "--since", "1d", "--db", database])
        #expect(usage.status == 0)
        for identity in counts.keys { #expect(usage.output.contains(identity)) }
        #expect(usage.output.contains("REQUESTS"))
        #expect(rows.allSatisfy { $0.usage.outputTokens <= 1500 })
    }
}
