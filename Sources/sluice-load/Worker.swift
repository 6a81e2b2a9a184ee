import CCurl
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the workers share: how many streams have been started, and when starting stops.
final class LoadProgress: Sendable {
    private let started = Atomic<Int>(0)
    private let limit: Int
    /// CLOCK_MONOTONIC ns after which no stream starts.
    let deadline: UInt64?

    init(limit: Int?, deadline: UInt64?) {
        self.limit = limit ?? Int.max
        self.deadline = deadline
    }

    /// Claims the right to start one more stream.
    func claim(now: UInt64) -> Bool {
        if let deadline, now >= deadline { return false }
        guard self.started.load(ordering: .relaxed) < self.limit else { return false }
        return self.started.add(1, ordering: .relaxed).newValue <= self.limit
    }
}

/// One thread's share of the streams: a curl multi handle with `slots` easy handles, driven through
/// `curl_multi_socket_action` over epoll (the C side in CCurl's shim.h), so a wake-up costs the
/// ready sockets, not every stream. Confined to the thread that calls ``run()``.
final class Worker {
    let plan: LoadPlan
    let allocator = ByteBufferAllocator()
    var stats = LoadStats()

    private let progress: LoadProgress
    private let slots: Int
    private let startedAt: UInt64
    private let multi: UnsafeMutableRawPointer
    private let epoll: Int32
    /// curl's timer as an absolute CLOCK_MONOTONIC deadline (-1: none), written by the C callback.
    private let timerDeadline: UnsafeMutablePointer<Int64>
    private var transfers: [Transfer] = []
    private var headerList: UnsafeMutablePointer<curl_slist>?
    /// The request body, owned here because CURLOPT_POSTFIELDS does not copy it.
    private let body: UnsafeMutableRawBufferPointer

    init?(plan: LoadPlan, slots: Int, progress: LoadProgress, startedAt: UInt64) {
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { return nil }
        guard let multi = curl_multi_init() else {
            close(epoll)
            return nil
        }
        self.epoll = epoll
        self.timerDeadline = .allocate(capacity: 1)
        self.timerDeadline.initialize(to: -1)
        self.plan = plan
        self.slots = slots
        self.progress = progress
        self.startedAt = startedAt
        self.multi = multi
        self.body = .allocate(byteCount: max(plan.body.count, 1), alignment: 1)
        self.body.copyBytes(from: plan.body)
        for header in plan.headers {
            self.headerList = curl_slist_append(self.headerList, header)
        }
        // Keep every slot's connection alive between its streams, so a run measures streams, not
        // connection set-up (curl's default cache is 4 × the number of added handles, which a slot
        // between two streams does not count as).
        _ = sluice_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, slots)
        // HTTP/2: new streams go onto open connections up to the server's concurrent-stream limit
        // (curl opens another connection past it); without this curl uses one connection a stream.
        if plan.usesHTTP2 {
            _ = sluice_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
            _ = sluice_multi_setopt_long(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, plan.streamsPerConnection)
        }
        _ = sluice_multi_use_epoll(multi, epoll, self.timerDeadline)
    }

    deinit {
        for transfer in self.transfers { curl_multi_remove_handle(self.multi, transfer.handle) }
        self.transfers.removeAll()
        curl_multi_cleanup(self.multi)
        close(self.epoll)
        self.timerDeadline.deallocate()
        curl_slist_free_all(self.headerList)
        self.body.deallocate()
    }

    /// Runs streams until the count or the duration is used up and every started stream is done.
    func run() -> LoadStats {
        for _ in 0..<self.slots {
            guard let transfer = Transfer(worker: self) else {
                self.stats.recordFailure(.transport, sample: "curl_easy_init failed")
                continue
            }
            self.configure(transfer)
            self.transfers.append(transfer)
        }
        var launched = 0
        var active = 0
        var finished: [Transfer] = []
        while true {
            let now = MonotonicClock.nanoseconds()
            // Slots start for the first time spread evenly over the ramp-up.
            while launched < self.transfers.count, self.launchTime(of: launched) <= now {
                if self.start(self.transfers[launched], now: now) {
                    active += 1
                    launched += 1
                } else {
                    launched = self.transfers.count
                }
            }
            _ = sluice_epoll_drive(self.multi, self.epoll, self.waitMilliseconds(launched: launched), self.timerDeadline)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(self.multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                var context: UnsafeMutableRawPointer?
                _ = sluice_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &context)
                let result = sluice_message_result(message)
                curl_multi_remove_handle(self.multi, easy)
                active -= 1
                guard let context else { continue }
                let transfer = Transfer.from(context: context)
                transfer.complete(result: result)
                finished.append(transfer)
            }
            // Restart outside the info_read loop: the messages point into the multi handle's state.
            let restartTime = MonotonicClock.nanoseconds()
            for transfer in finished where self.start(transfer, now: restartTime) {
                active += 1
            }
            finished.removeAll(keepingCapacity: true)
            if active == 0, launched >= self.transfers.count { break }
        }
        return self.stats
    }

    /// How long epoll may sleep: until curl's timer, the next slot's first start, or 100 ms.
    private func waitMilliseconds(launched: Int) -> Int32 {
        let now = MonotonicClock.nanoseconds()
        var wait: UInt64 = 100_000_000
        let deadline = self.timerDeadline.pointee
        if deadline >= 0 {
            wait = min(wait, UInt64(deadline) > now ? UInt64(deadline) - now : 0)
        }
        if launched < self.transfers.count {
            let launch = self.launchTime(of: launched)
            wait = min(wait, launch > now ? launch - now : 0)
        }
        // Round up: waking a little early would only spin until the deadline.
        return Int32((wait + 999_999) / 1_000_000)
    }

    private func launchTime(of slot: Int) -> UInt64 {
        guard self.plan.rampUpNanoseconds > 0, self.slots > 1 else { return self.startedAt }
        return self.startedAt + self.plan.rampUpNanoseconds / UInt64(self.slots) * UInt64(slot)
    }

    private func start(_ transfer: Transfer, now: UInt64) -> Bool {
        guard self.progress.claim(now: now) else { return false }
        transfer.prepare(now: MonotonicClock.nanoseconds())
        guard curl_multi_add_handle(self.multi, transfer.handle) == CURLM_OK else {
            self.stats.recordFailure(.transport, sample: "curl_multi_add_handle failed")
            return false
        }
        return true
    }

    /// Sets the options every stream of this slot shares; they survive remove/add cycles.
    private func configure(_ transfer: Transfer) {
        let handle = transfer.handle
        _ = sluice_easy_setopt_string(handle, CURLOPT_URL, self.plan.url)
        _ = sluice_easy_setopt_long(handle, CURLOPT_POST, 1)
        _ = sluice_easy_setopt_long(handle, CURLOPT_POSTFIELDSIZE, self.plan.body.count)
        _ = sluice_easy_setopt_pointer(handle, CURLOPT_POSTFIELDS, self.body.baseAddress)
        _ = sluice_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, self.headerList)
        if self.plan.usesHTTP2 {
            _ = sluice_easy_setopt_long(handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
            // Wait for a connection that is still negotiating to say whether it multiplexes, rather
            // than open one connection per stream while the first handshake is in flight.
            _ = sluice_easy_setopt_long(handle, CURLOPT_PIPEWAIT, 1)
        } else {
            _ = sluice_easy_setopt_long(handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        }
        if let file = self.plan.certificateAuthorityFile {
            _ = sluice_easy_setopt_string(handle, CURLOPT_CAINFO, file)
        }
        // Loopback measurement: a proxy from the environment would measure the proxy.
        _ = sluice_easy_setopt_string(handle, CURLOPT_NOPROXY, "*")
        // Worker threads: curl must not use signals for its timeouts.
        _ = sluice_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = sluice_easy_setopt_long(handle, CURLOPT_TCP_NODELAY, 1)
        _ = sluice_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, self.plan.timeoutMilliseconds)
        _ = sluice_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, self.plan.connectTimeoutMilliseconds)
        _ = sluice_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, transfer.errorBufferPointer)
        _ = sluice_easy_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION, receiveBody)
        _ = sluice_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, transfer.context)
        _ = sluice_easy_setopt_pointer(handle, CURLOPT_PRIVATE, transfer.context)
    }
}

@available(*, unavailable)
extension Worker: Sendable {}

/// curl's write callback: hands each read of the body to its transfer. Returning fewer bytes than
/// given would abort the transfer, so it always takes them all.
private func receiveBody(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    let length = size * count
    guard let data, let context, length > 0 else { return length }
    Transfer.from(context: context).receive(UnsafeRawBufferPointer(start: data, count: length))
    return length
}
