import CCurl
import Histogram
import NIOCore

/// One concurrency slot: a curl easy handle, reused stream after stream (curl keeps its connection
/// alive in the multi handle's cache), and the state of the stream it is running.
///
/// Confined to its worker's thread: curl calls back into it from `curl_multi_perform` there.
final class Transfer {
    let handle: UnsafeMutableRawPointer
    /// curl writes its detailed error text here (CURLOPT_ERRORBUFFER needs `CURL_ERROR_SIZE` bytes).
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private unowned let worker: Worker

    private var checker: StreamChecker
    private var startedAt: UInt64 = 0
    private var sawFirstByte = false
    private var status = 0
    /// The start of a non-200 body, for the report's sample.
    private var errorBody: [UInt8] = []

    init?(worker: Worker) {
        guard let handle = curl_easy_init() else { return nil }
        self.handle = handle
        self.worker = worker
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        self.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        self.checker = StreamChecker(route: worker.plan.route)
    }

    deinit {
        curl_easy_cleanup(self.handle)
        self.errorBuffer.deallocate()
    }

    /// The pointer curl hands back to the write callback and through CURLINFO_PRIVATE.
    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(context: UnsafeMutableRawPointer) -> Transfer {
        Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    }

    var errorBufferPointer: UnsafeMutablePointer<CChar> { self.errorBuffer }

    /// Resets the per-stream state; called right before the handle is added to the multi handle.
    func prepare(now: UInt64) {
        self.checker = StreamChecker(route: self.worker.plan.route)
        self.startedAt = now
        self.sawFirstByte = false
        self.status = 0
        self.errorBody.removeAll(keepingCapacity: true)
        self.errorBuffer[0] = 0
    }

    /// Body bytes from curl's write callback.
    func receive(_ bytes: UnsafeRawBufferPointer) {
        // Read the clock before anything else: this is the chunk's arrival.
        let arrival = MonotonicClock.nanoseconds()
        self.worker.stats.bytes += bytes.count
        if !self.sawFirstByte {
            self.sawFirstByte = true
            _ = self.worker.stats.timeToFirstByte.record(arrival &- self.startedAt)
            self.status = self.responseCode()
        }
        guard self.status == 200 else {
            if self.errorBody.count < 300 { self.errorBody.append(contentsOf: bytes.prefix(300 - self.errorBody.count)) }
            return
        }
        var buffer = self.worker.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        self.checker.consume(buffer, arrival: arrival, stats: &self.worker.stats)
    }

    /// Records the stream's verdict once curl reports it done with `result`.
    func complete(result: CURLcode) {
        if self.status == 0 { self.status = self.responseCode() }
        var connects = 0
        _ = sluice_easy_getinfo_long(self.handle, CURLINFO_NUM_CONNECTS, &connects)
        self.worker.stats.connectionsOpened += connects
        let verdict = self.verdict(result: result)
        if let (failure, detail) = verdict {
            self.worker.stats.recordFailure(failure, sample: detail)
        } else {
            self.worker.stats.streamsOK += 1
        }
    }

    private func verdict(result: CURLcode) -> (StreamFailure, String)? {
        if result != CURLE_OK {
            let detail = self.curlError(result)
            if result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST
                || result == CURLE_COULDNT_RESOLVE_PROXY
            {
                return (.connect, detail)
            }
            if result == CURLE_OPERATION_TIMEDOUT {
                return (self.status == 0 && !self.sawFirstByte ? .connect : .timeout, detail)
            }
            switch self.status {
            case 0: return (.transport, detail)
            case 200:
                // The connection broke mid-body: whatever the checker saw first explains it best
                // (an error event or a bad frame before the cut); otherwise it was cut short.
                if let failure = self.checker.failure { return (failure, self.checker.failureDetail) }
                return (.truncated, detail + " after \(self.checker.textDeltas) text deltas")
            default: return (.httpStatus(self.status), detail)
            }
        }
        guard self.status == 200 else {
            return (.httpStatus(self.status), String(decoding: self.errorBody, as: UTF8.self))
        }
        return self.checker.finish(expectedTextDeltas: self.worker.plan.expectedTextDeltas)
    }

    private func responseCode() -> Int {
        var code = 0
        _ = sluice_easy_getinfo_long(self.handle, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    private func curlError(_ result: CURLcode) -> String {
        let summary = curl_easy_strerror(result).map { String(cString: $0) } ?? "curl error"
        let detail = String(cString: self.errorBuffer)
        return detail.isEmpty ? "curl \(result.rawValue): \(summary)" : "curl \(result.rawValue): \(summary): \(detail)"
    }
}
