import NIOCore
import Testing

@testable import StreamCore

struct EventStreamDecoderTests {
    // MARK: Chunking

    @Test("random valid streams decode identically for every chunking", arguments: 0..<12)
    func randomStreamsAnyChunking(seed: UInt64) async throws {
        var rng = SeededGenerator(seed: 0xC0FFEE + seed)
        let (bytes, expected) = try randomStream(using: &rng, messageCount: 40, payloadSizes: 0...600)
        let oneRead = await decodeStream(bytes)
        #expect(oneRead.error == nil)
        #expect(oneRead.messages.map(ExpectedMessage.init) == expected, "seed \(seed)")

        // 1-byte reads, fixed sizes around the prelude, and random sizes (including empty reads).
        var chunkings: [[Int]] = [Array(repeating: 1, count: bytes.count)]
        for size in [2, 3, 11, 12, 13, 17, 64, 4096] {
            chunkings.append(Array(repeating: size, count: bytes.count / size + 1))
        }
        for _ in 0..<20 {
            await Task.yield()  // see ``decodeStream(_:readSizes:limits:)``
            chunkings.append((0..<bytes.count).map { _ in Int.random(in: 0...300, using: &rng) })
        }
        for sizes in chunkings {
            let outcome = await decodeStream(bytes, readSizes: sizes)
            #expect(outcome.error == nil, "seed \(seed) sizes \(sizes.prefix(5))")
            #expect(outcome.messages.map(ExpectedMessage.init) == expected, "seed \(seed) sizes \(sizes.prefix(5))")
        }
    }

    @Test("every single split point of a stream gives the same messages")
    func everySplitPoint() async throws {
        var rng = SeededGenerator(seed: 99)
        let (bytes, expected) = try randomStream(using: &rng, messageCount: 4, payloadSizes: 0...120)
        for cut in 0...bytes.count {
            await Task.yield()  // see ``decodeStream(_:readSizes:limits:)``
            for second in [cut, min(bytes.count, cut + 1), min(bytes.count, cut + 13)] {
                let sizes = [cut, second - cut, Int.max]
                let outcome = await decodeStream(bytes, readSizes: sizes)
                #expect(outcome.error == nil, "cut \(cut)")
                #expect(outcome.messages.map(ExpectedMessage.init) == expected, "cut \(cut)/\(second)")
            }
        }
    }

    @Test("payloads up to 1 MiB decode in 1-byte, 4 KiB and random reads")
    func largePayloads() async throws {
        var rng = SeededGenerator(seed: 1_048_576)
        var (bytes, expected) = try randomStream(using: &rng, messageCount: 3, payloadSizes: 0...2000)
        let big = ByteBuffer(bytes: rng.bytes(1024 * 1024))
        let headers = randomHeaders(using: &rng)
        bytes += Array(try EventStreamEncoder.encode(headers: headers, payload: big).readableBytesView)
        expected.append(ExpectedMessage(headers: headers, payload: big))
        for sizes in [[Int.max], Array(repeating: 4096, count: bytes.count / 4096 + 1), Array(repeating: 1, count: bytes.count)] {
            let outcome = await decodeStream(bytes, readSizes: sizes)
            #expect(outcome.error == nil)
            #expect(outcome.messages.map(ExpectedMessage.init) == expected)
        }
    }

    // MARK: Corruption and truncation

    @Test("every single-bit flip anywhere in a frame is detected", arguments: [0, 1, 2])
    func everyBitFlip(seed: UInt64) async throws {
        var rng = SeededGenerator(seed: 0xB17 + seed)
        let headers = randomHeaders(using: &rng, maximumCount: 4)
        let payload = ByteBuffer(bytes: rng.bytes(Int.random(in: 0...200, using: &rng)))
        let frame = Array(try EventStreamEncoder.encode(headers: headers, payload: payload).readableBytesView)
        for byte in frame.indices {
            await Task.yield()  // see ``decodeStream(_:readSizes:limits:)``
            for bit in 0..<8 {
                var flipped = frame
                flipped[byte] ^= 1 << bit
                let outcome = await decodeStream(flipped)
                #expect(outcome.messages.isEmpty, "flip byte \(byte) bit \(bit) gave a message")
                let error = try #require(outcome.error, "flip byte \(byte) bit \(bit) undetected")
                let expectedCode: EventStreamError.Code = byte < 12 ? .preludeChecksum : .messageChecksum
                #expect(error.code == expectedCode, "flip byte \(byte) bit \(bit)")
            }
        }
    }

    @Test("truncation at every offset needs more data and never yields a wrong message")
    func truncationAtEveryOffset() async throws {
        var rng = SeededGenerator(seed: 0x7E)
        let (bytes, expected) = try randomStream(using: &rng, messageCount: 3, payloadSizes: 0...80)
        // Message ends, from the encoded lengths.
        var ends: [Int] = []
        var offset = 0
        while offset < bytes.count {
            offset += Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            ends.append(offset)
        }
        for length in 0..<bytes.count {
            await Task.yield()  // see ``decodeStream(_:readSizes:limits:)``
            for sizes in [[Int.max], Array(repeating: 1, count: length)] {
                let outcome = await decodeStream(Array(bytes[..<length]), readSizes: sizes)
                let complete = ends.filter { $0 <= length }.count
                #expect(outcome.messages.map(ExpectedMessage.init) == Array(expected.prefix(complete)), "length \(length)")
                if ends.contains(length) || length == 0 {
                    #expect(outcome.error == nil, "length \(length)")
                } else {
                    let error = try #require(outcome.error, "length \(length) ended silently")
                    #expect(error.code == .truncated)
                    #expect(error.streamOffset == length)
                }
            }
        }
    }

    @Test("end of input 1–11 bytes into a prelude is an error")
    func truncatedPrelude() throws {
        let frame = Array(try EventStreamEncoder.encode(headers: [], payload: ByteBuffer(string: "x")).readableBytesView)
        for length in 1...11 {
            var decoder = EventStreamDecoder()
            try decoder.feed(ByteBuffer(bytes: frame[..<length]))
            #expect(try decoder.next() == nil)
            #expect(!decoder.isAtMessageBoundary)
            #expect(throws: EventStreamError(.truncated, messageOffset: 0, streamOffset: length)) { try decoder.finish() }
        }
    }

    // MARK: Limits

    private func prelude(total: UInt32, headers: UInt32) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeMultipleIntegers(total, headers)
        let crc = buffer.withUnsafeReadableBytes { EventStreamCRC.update(0, $0) }
        buffer.writeInteger(crc)
        return buffer
    }

    @Test("a lying 4 GiB length is rejected from the 12-byte prelude, before any body arrives")
    func lyingLength() throws {
        var decoder = EventStreamDecoder()
        try decoder.feed(self.prelude(total: .max, headers: 0))
        #expect(throws: EventStreamError(.messageTooLarge, messageOffset: 0, streamOffset: 0)) { try decoder.next() }
    }

    @Test("limits are checked in order: CRC, ≥ 16, headers ≤ total − 16, sizes")
    func limitOrder() throws {
        func code(_ buffer: ByteBuffer, limits: EventStreamDecoder.Limits = .init()) -> EventStreamError.Code? {
            var decoder = EventStreamDecoder(limits: limits)
            do {
                try decoder.feed(buffer)
                _ = try decoder.next()
                return nil
            } catch let error as EventStreamError {
                return error.code
            } catch {
                return nil
            }
        }
        var badCRC = self.prelude(total: 15, headers: 0xFFFF_FFFF)
        badCRC.setInteger(UInt32(0), at: 8)
        #expect(code(badCRC) == .preludeChecksum)
        #expect(code(self.prelude(total: 15, headers: 0xFFFF_FFFF)) == .messageTooShort)
        #expect(code(self.prelude(total: 0xFFFF_FFFF, headers: 0xFFFF_FFF0)) == .headersLengthInvalid)
        #expect(code(self.prelude(total: 16, headers: 1)) == .headersLengthInvalid)
        #expect(code(self.prelude(total: 0xFFFF_FFFF, headers: 0xFFFF_FFEF)) == .messageTooLarge)
        #expect(code(self.prelude(total: 24 * 1024 * 1024, headers: 128 * 1024)) == nil)
        #expect(code(self.prelude(total: 24 * 1024 * 1024 + 1, headers: 0)) == .messageTooLarge)
        #expect(code(self.prelude(total: 1024 * 1024, headers: 128 * 1024 + 1)) == .headersTooLarge)
        let small = EventStreamDecoder.Limits(maximumMessageLength: 100, maximumHeadersLength: 10)
        #expect(code(self.prelude(total: 101, headers: 0), limits: small) == .messageTooLarge)
        #expect(code(self.prelude(total: 100, headers: 11), limits: small) == .headersTooLarge)
        #expect(code(self.prelude(total: 100, headers: 10), limits: small) == nil)
    }

    // MARK: Failure is final

    @Test("after an error the decoder refuses all further input")
    func deadAfterError() throws {
        var frame = try EventStreamEncoder.encode(headers: [], payload: ByteBuffer(string: "ok"))
        let good = frame
        frame.setInteger(UInt8(0xFF), at: 13)
        var decoder = EventStreamDecoder()
        try decoder.feed(frame)
        #expect(throws: EventStreamError.self) { try decoder.next() }
        #expect { try decoder.feed(good) } throws: { ($0 as? EventStreamError)?.code == .streamAlreadyFailed }
        #expect { try decoder.next() } throws: { ($0 as? EventStreamError)?.code == .streamAlreadyFailed }
        #expect { try decoder.finish() } throws: { ($0 as? EventStreamError)?.code == .streamAlreadyFailed }
    }

    // MARK: Zero copy

    @Test("a message inside one read is returned as slices of that read")
    func zeroCopySlices() throws {
        var stream = ByteBuffer()
        for index in 0..<3 {
            try EventStreamEncoder.write(
                headers: [EventStreamHeader(name: ":event-type", value: .init(string: "contentBlockDelta"))],
                payload: ByteBuffer(string: "payload \(index)"),
                into: &stream
            )
        }
        // A slice's view starts at its own first byte, so "shares storage" means "lies inside the read".
        let storage = stream.withUnsafeReadableBytes { bytes in
            let start = UInt(bitPattern: bytes.baseAddress)
            return start..<start + UInt(bytes.count)
        }
        func address(_ buffer: ByteBuffer) -> UInt {
            buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        }
        var decoder = EventStreamDecoder()
        try decoder.feed(stream)
        var count = 0
        while let message = try decoder.next() {
            #expect(storage.contains(address(message.payload)))
            #expect(storage.contains(address(message.headers.section)))
            count += 1
        }
        #expect(count == 3)
    }

    @Test("a message built from parts equals the decoded one, and its parts can be replaced")
    func messageFromParts() throws {
        let headers = [EventStreamHeader(name: ":event-type", value: .init(string: "chunk")), EventStreamHeader(name: "n", value: .integer(7))]
        let frame = try EventStreamEncoder.encode(headers: headers, payload: ByteBuffer(string: #"{"bytes":"e30="}"#))
        var decoder = EventStreamDecoder()
        try decoder.feed(frame)
        let decoded = try #require(try decoder.next())
        let built = EventStreamMessage(headers: decoded.headers, payload: ByteBuffer(string: #"{"bytes":"e30="}"#))
        #expect(built == decoded)
        #expect(built.hashValue == decoded.hashValue)
        #expect(Array(built.headers) == headers)
        #expect(built.withUnsafePayload { Array($0) } == Array(#"{"bytes":"e30="}"#.utf8))
        #expect(built.withUnsafeHeaderSection { $0.count } == decoded.headers.section.readableBytes)

        var changed = built
        changed.payload = ByteBuffer(string: "other")
        #expect(changed.payload == ByteBuffer(string: "other"))
        #expect(Array(changed.headers) == headers)
        changed.headers = EventStreamHeaders()
        #expect(changed.headers.count == 0)
        #expect(changed.payload == ByteBuffer(string: "other"))
        #expect(changed.bodyLength == 5)
    }

    @Test("messages of one read share its storage but each reads exactly its own frame, also after later reads")
    func messagesOfOneReadStayExact() throws {
        // A message holds the decoder's read with its indices moved onto its frame (no slice is
        // made): nothing of the next frame may show through any of its accessors.
        var read = ByteBuffer()
        let parts: [(String, String)] = [("chunk", "first payload"), ("other", ""), ("chunk", "third, and the longest payload of the read")]
        for (event, payload) in parts {
            try EventStreamEncoder.write(
                headers: [EventStreamHeader(name: ":event-type", value: .init(string: event))], payload: ByteBuffer(string: payload), into: &read
            )
        }
        var decoder = EventStreamDecoder()
        try decoder.feed(read)
        var kept: [EventStreamMessage] = []
        while let message = try decoder.next() { kept.append(message) }
        #expect(kept.count == 3)
        // A later read, then a split frame, reuse or replace the decoder's buffers.
        let later = try EventStreamEncoder.encode(headers: [], payload: ByteBuffer(string: String(repeating: "x", count: 300)))
        try decoder.feed(later.getSlice(at: later.readerIndex, length: 100)!)
        #expect(try decoder.next() == nil)
        try decoder.feed(later.getSlice(at: later.readerIndex + 100, length: later.readableBytes - 100)!)
        let split = try #require(try decoder.next())
        #expect(split.payload == ByteBuffer(string: String(repeating: "x", count: 300)))
        for (message, (event, payload)) in zip(kept, parts) {
            let headers = [EventStreamHeader(name: ":event-type", value: .init(string: event))]
            #expect(message.payload == ByteBuffer(string: payload))
            #expect(message.withUnsafePayload { Array($0) } == Array(payload.utf8))
            #expect(Array(message.headers) == headers)
            #expect(message.withUnsafeHeaderSection { $0.count } == message.headers.section.readableBytes)
            #expect(message.bodyLength == message.headers.section.readableBytes + payload.utf8.count)
            #expect(message == EventStreamMessage(headers: message.headers, payload: ByteBuffer(string: payload)))
        }
    }

    @Test("a read whose messages were all taken is let go: its owner can write into it again without a copy")
    func usedUpReadIsLetGo() throws {
        var read = ByteBuffer()
        read.writeImmutableBuffer(try EventStreamEncoder.encode(headers: [], payload: ByteBuffer(string: "one")))
        read.writeImmutableBuffer(try EventStreamEncoder.encode(headers: [], payload: ByteBuffer(string: "two")))
        var decoder = EventStreamDecoder()
        try decoder.feed(read)
        var payloads: [String] = []
        while let message = try decoder.next() { payloads.append(String(buffer: message.payload)) }
        #expect(payloads == ["one", "two"])
        // A socket's receive buffer is reused only when its channel is its last holder: written in
        // place (the same storage) means the decoder kept no reference to it.
        let before = read.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        read.setInteger(UInt8(0), at: read.readerIndex)
        #expect(read.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) } == before)
    }

    @Test("a split message is accumulated into one buffer sized from its prelude")
    func splitMessageAccumulatedOnce() throws {
        let payload = ByteBuffer(bytes: Array(repeating: 0x61, count: 10_000))
        let frame = try EventStreamEncoder.encode(headers: [], payload: payload)
        var decoder = EventStreamDecoder()
        var message: EventStreamMessage?
        var reads = frame
        var capacities: Set<Int> = []
        while let read = reads.readSlice(length: min(1000, reads.readableBytes)), read.readableBytes > 0 {
            try decoder.feed(read)
            message = try decoder.next() ?? message
            if message == nil { capacities.insert(decoder.partialCapacity) }
        }
        #expect(message?.payload == payload)
        // The buffer was sized once, from the prelude, and never grew.
        #expect(capacities.count == 1)
        #expect(capacities.first.map { $0 >= frame.readableBytes } == true)
    }

    // MARK: Bedrock headers

    @Test("Bedrock's protocol headers are read without making strings")
    func bedrockHeaders() throws {
        let frame = try EventStreamEncoder.encode(
            headers: [
                EventStreamHeader(name: ":exception-type", value: .init(string: "throttlingException")),
                EventStreamHeader(name: ":content-type", value: .init(string: "application/json")),
                EventStreamHeader(name: ":message-type", value: .init(string: "exception")),
                EventStreamHeader(name: ":error-code", value: .init(string: "E1")),
                EventStreamHeader(name: ":error-message", value: .init(string: "boom")),
                EventStreamHeader(name: "count", value: .integer(7)),
            ],
            payload: ByteBuffer(string: #"{"message":"slow down"}"#)
        )
        var decoder = EventStreamDecoder()
        try decoder.feed(frame)
        let message = try #require(try decoder.next())
        #expect(message.headers.messageType == .exception)
        #expect(message.headers.exceptionType == ByteBuffer(string: "throttlingException"))
        #expect(message.headers.contentType == ByteBuffer(string: "application/json"))
        #expect(message.headers.errorCode == ByteBuffer(string: "E1"))
        #expect(message.headers.errorMessage == ByteBuffer(string: "boom"))
        #expect(message.headers.eventType == nil)
        #expect(!message.headers.isEvent("throttlingException"))
        #expect(message.headers.value(named: "count") == .integer(7))
        #expect(message.headers.stringBytes(named: "count") == nil)
        #expect(message.headers.count == 6)

        let event = try EventStreamEncoder.encode(
            headers: [EventStreamHeader(name: ":event-type", value: .init(string: "messageStop")),
                      EventStreamHeader(name: ":message-type", value: .integer(1))],
            payload: ByteBuffer()
        )
        var second = EventStreamDecoder()
        try second.feed(event)
        let stop = try #require(try second.next())
        #expect(stop.headers.isEvent("messageStop"))
        #expect(!stop.headers.isEvent("messageStart"))
        #expect(stop.headers.messageType == .unknown)
        #expect(EventStreamHeaders().messageType == nil)
    }
}

struct EventStreamHeaderCountTests {
    private func headers(count: Int, duplicateAt: Int? = nil) -> [EventStreamHeader] {
        (0..<count).map { index in
            let name = index == duplicateAt ? "n0" : "n\(index)"
            return EventStreamHeader(name: name, value: .bool(index % 2 == 0))
        }
    }

    @Test("duplicate names are refused among few and among many headers", arguments: [1, 5, 15, 16, 17, 40, 300])
    func duplicates(at position: Int) async throws {
        let unique = try EventStreamEncoder.encode(headers: self.headers(count: position + 5), payload: ByteBuffer())
        let clean = await decodeStream(Array(unique.readableBytesView))
        #expect(clean.error == nil)
        #expect(clean.messages.first?.headers.count == position + 5)

        let repeated = try EventStreamEncoder.encode(headers: self.headers(count: position + 5, duplicateAt: position), payload: ByteBuffer())
        let outcome = await decodeStream(Array(repeated.readableBytesView))
        let error = try #require(outcome.error)
        #expect(error.code == .headerMalformed)
        // Each bool record before the duplicate is 1 + name + 1 bytes; the error points at the duplicate.
        let offset = 12 + (0..<position).reduce(0) { $0 + 2 + "n\($1)".utf8.count }
        #expect(error.streamOffset == offset)
    }

    @Test("a header section is checked whenever its bytes differ from the last one that passed", arguments: [1, 2, 4])
    func repeatedSectionsAreStillChecked(at position: Int) async throws {
        // n0…n4 and n0,…,n0,… have header sections of the same length that differ in one name: the
        // decoder, which skips the checks for a section equal to the last good one, must see it.
        let good = try EventStreamEncoder.encode(headers: self.headers(count: 5), payload: ByteBuffer(string: "{}"))
        let bad = try EventStreamEncoder.encode(headers: self.headers(count: 5, duplicateAt: position), payload: ByteBuffer(string: "{}"))
        #expect(good.readableBytes == bad.readableBytes)
        let stream = Array(repeating: Array(good.readableBytesView), count: 6).joined() + Array(bad.readableBytesView)
        for readSize in [1, 7, Int.max] {
            let outcome = await decodeStream(Array(stream), readSizes: repeatElement(readSize, count: .max))
            #expect(outcome.messages.count == 6)
            #expect(outcome.messages.allSatisfy { $0.headers.count == 5 })
            let error = try #require(outcome.error)
            #expect(error.code == .headerMalformed)
            #expect(error.messageOffset == 6 * good.readableBytes)
        }
        // After a good frame, a different good section passes, and the first one again after it.
        let other = try EventStreamEncoder.encode(headers: self.headers(count: 3), payload: ByteBuffer())
        let mixed = Array(good.readableBytesView) + Array(other.readableBytesView) + Array(good.readableBytesView)
        let outcome = await decodeStream(mixed)
        #expect(outcome.error == nil)
        #expect(outcome.messages.map(\.headers.count) == [5, 3, 5])
    }

    @Test("a 128 KiB header section of 2-byte names decodes (the duplicate check is not quadratic)")
    func manyTinyHeaders() async throws {
        var names: [EventStreamHeader] = []
        var size = 0
        var index = 0
        while size + 4 <= 128 * 1024 {
            let name = ByteBuffer(bytes: [UInt8(1 + index / 255), UInt8(1 + index % 255)])
            names.append(EventStreamHeader(name: name, value: .bool(true)))
            size += 4
            index += 1
        }
        let frame = try EventStreamEncoder.encode(headers: names, payload: ByteBuffer())
        let outcome = await decodeStream(Array(frame.readableBytesView))
        #expect(outcome.error == nil)
        #expect(outcome.messages.first?.headers.count == names.count)
    }
}
