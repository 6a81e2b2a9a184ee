import Foundation
import NIOCore
import Synchronization
import Testing

@testable import Gateway

/// The request body's time limit waits on ``Deadlines`` (one sweep for all waits, not a timer each):
/// a wait must end when its deadline passes, a cancelled one at once, and a request whose body
/// trickles must still get its 408. (A wait that is never resumed hangs: the time limit ends it.)
/// The bounds on how late things may end are loose: while the whole suite starts on two cores the
/// cooperative pool is saturated, and these tests took 13-15 s where they take 0.2-1 s alone. What
/// shows a limit working is what ended and how (`true`, `false`, the 408), not how soon.
@Suite(.timeLimit(.minutes(1)))
struct DeadlinesTests {
    @Test("a wait ends true once its deadline has passed, and not before")
    func expires() async {
        let deadlines = Deadlines(resolution: .milliseconds(20))
        let start = ContinuousClock.now
        #expect(await deadlines.wait(until: start + .milliseconds(200)))
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(200))
        #expect(elapsed < .seconds(45), "ended \(elapsed) after its start")
        #expect(deadlines.waiting == 0)
    }

    @Test("a cancelled wait ends false at once, however far its deadline; one cancelled before it waits, too")
    func cancelled() async {
        let deadlines = Deadlines(resolution: .milliseconds(20))
        let start = ContinuousClock.now
        let waiting = Task { await deadlines.wait(until: .now + .seconds(600)) }
        try? await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(await waiting.value == false)
        #expect(ContinuousClock.now - start < .seconds(45))
        #expect(deadlines.waiting == 0)

        let early = Task {
            while !Task.isCancelled { await Task.yield() }
            return await deadlines.wait(until: .now + .seconds(600))
        }
        early.cancel()
        #expect(await early.value == false)
        #expect(ContinuousClock.now - start < .seconds(45))
        #expect(deadlines.waiting == 0)
        #expect(deadlines.marks == 0)
    }

    @Test("many waits at once: each ends once, the expired ones true, the cancelled ones false; the sweep starts again after stopping")
    func many() async {
        let deadlines = Deadlines(resolution: .milliseconds(10))
        for _ in 0..<2 {
            let results = await withTaskGroup(of: (Int, Bool).self) { group in
                var cancellable: [Task<Bool, Never>] = []
                for index in 0..<100 where index % 2 == 1 {
                    cancellable.append(Task { await deadlines.wait(until: .now + .seconds(600)) })
                }
                for index in 0..<100 where index % 2 == 0 {
                    group.addTask { (index, await deadlines.wait(until: .now + .milliseconds(30 + index))) }
                }
                try? await Task.sleep(for: .milliseconds(20))
                for task in cancellable { task.cancel() }
                for (offset, task) in cancellable.enumerated() { group.addTask { (2 * offset + 1, await task.value) } }
                var results: [Int: Bool] = [:]
                for await (index, result) in group { results[index] = result }
                return results
            }
            #expect(results.count == 100)
            #expect(results.allSatisfy { $0.value == ($0.key % 2 == 0) })
            #expect(deadlines.waiting == 0)
            // Nobody waits: the sweep stops, and the next wait must start it again.
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    @Test("a scheduled action runs once after its deadline; a cancelled one never; cancelling after it ran leaves nothing behind")
    func scheduled() async {
        let deadlines = Deadlines(resolution: .milliseconds(10))
        let runs = Mutex(0)
        let start = ContinuousClock.now
        let ran = deadlines.schedule(at: start + .milliseconds(50)) { runs.withLock { $0 += 1 } }
        // Far off: it can only leave by its cancellation (`waiting` shows it did).
        let dropped = deadlines.schedule(at: start + .seconds(600)) { runs.withLock { $0 += 100 } }
        deadlines.cancel(dropped)
        while runs.withLock({ $0 }) == 0, ContinuousClock.now - start < .seconds(45) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        try? await Task.sleep(for: .milliseconds(100))
        #expect(runs.withLock { $0 } == 1)
        #expect(ContinuousClock.now - start >= .milliseconds(50))
        deadlines.cancel(ran)
        deadlines.cancel(dropped)
        #expect(deadlines.waiting == 0)
        #expect(deadlines.marks == 0)
    }

    @Test("a body that trickles past requestBodySeconds gets the 408 in the client's shape, on time")
    func tricklingBody() async throws {
        try await LiveStack.run(configure: { $0.timeouts.requestBody = .seconds(1) }) { stack in
            let connection = try RawConnection(port: stack.gatewayPort)
            let start = ContinuousClock.now
            #expect(
                connection.send(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(stack.token)\r\n"
                        + "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"model\":"
                )
            )
            let trickle = Task {
                for _ in 0..<40 {
                    guard connection.send(" ") else { return }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            let (bytes, _) = await connection.receiveBytes(for: .seconds(28)) { received in
                String(decoding: received, as: UTF8.self).contains("}")
            }
            trickle.cancel()
            let elapsed = ContinuousClock.now - start
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 408"), "\(text.prefix(200))")
            #expect(text.contains("request_body_timeout") || text.contains("did not arrive"), "\(text)")
            #expect(elapsed >= .seconds(1))
            // Without the limit no 408 would come: the client idle limit (30 s) closes the connection.
            #expect(elapsed < .seconds(25), "the 408 came \(elapsed) after the request started")
            // The limit cancels the request's task (it reads the body itself); the refusal is still
            // recorded, before the answer.
            let rows = try await stack.store.usage(since: .distantPast)
            #expect(rows.map(\.status) == [408])
            #expect(rows.first?.finishReason == "request_body_timeout")
            // Its duration is the request's, from its head (it was ~0 when counted from the refusal).
            #expect((rows.first?.durationMilliseconds ?? 0) >= 1000, "\(rows.first?.durationMilliseconds ?? -1) ms")
        }
    }
}
