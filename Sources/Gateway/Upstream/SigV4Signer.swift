internal import Crypto
package import NIOCore

#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

/// Signs upstream requests with AWS Signature Version 4 (header form, `AWS4-HMAC-SHA256`).
///
/// The signer is a pure value: it reads no clock and no environment. The request time is a parameter,
/// as in soto's signer, so tests are deterministic and retries can choose to re-sign with a new time.
///
/// What it signs, and how, follows botocore's `SigV4Auth` for non-S3 services (Bedrock's reference
/// client behaviour):
/// - **Canonical URI.** The path *as sent* (already percent-encoded, e.g. `…/us.anthropic…-v1%3A0/…`) is
///   normalised (`.`/`..` segments resolved, empty segments dropped, an empty path becomes `/`) and then
///   URI-encoded once more, byte by byte, keeping only `A–Z a–z 0–9 - _ . ~` and `/`. So `%3A` is signed
///   as `%253A`: AWS's "encode each path segment twice" rule for every service but S3.
/// - **Canonical query.** Each `name=value` pair is percent-decoded and re-encoded with the same rule
///   (`/` encoded too), then sorted by name and value. A query already encoded the AWS way is unchanged.
/// - **Canonical headers.** `host`, `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with a
///   session token), `content-type` and every `x-amz-*` header given; names lowercased, values trimmed
///   with inner whitespace runs collapsed, repeated names joined with `,`, sorted by name.
/// - **Payload.** The hex SHA-256 of the exact body bytes, also sent as `x-amz-content-sha256`.
///
/// ```swift
/// let signer = SigV4Signer(credentials: credentials, region: "us-east-1")
/// let extra = signer.signedHeaders(
///     method: "POST",
///     url: "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
///     query: nil,
///     host: "bedrock-runtime.us-east-1.amazonaws.com",
///     headers: [("content-type", "application/json")],
///     body: body,
///     date: .now
/// )
/// for (name, value) in extra { request.headers.add(name: name, value: value) }
/// ```
///
/// - Important: Send the body, path, query and signed headers exactly as signed. Anything that rewrites
///   them afterwards (a proxy changing `Host`, re-encoding the path, re-serialising JSON) breaks the
///   signature.
package struct SigV4Signer: Sendable {
    package let credentials: AWSCredentials
    package let region: String
    package let service: String

    /// - Parameters:
    ///   - credentials: The key pair (and optional session token) to sign with.
    ///   - region: The credential-scope region, e.g. `us-east-1` (from `AWS_REGION` in clients).
    ///   - service: The credential-scope service. Bedrock uses `bedrock` for both the runtime and the
    ///     control plane (CLAUDE_CODE.md §6).
    package init(credentials: AWSCredentials, region: String, service: String = "bedrock") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The headers to add to a request so that AWS accepts it.
    ///
    /// - Parameters:
    ///   - method: The HTTP method, e.g. `POST` (uppercased for signing).
    ///   - path: The request path exactly as it goes on the wire, already percent-encoded.
    ///   - query: The query string as sent, without the `?`, or `nil`.
    ///   - host: The `Host` header value as sent (include a non-default port).
    ///   - headers: The request's other headers. `content-type` and `x-amz-*` ones are signed; the rest
    ///     are ignored. Don't pass `authorization`, `x-amz-date`, `x-amz-content-sha256` or
    ///     `x-amz-security-token`: the signer sets those.
    ///   - body: The exact body bytes that will be sent (empty for GET).
    ///   - date: The signing time; AWS rejects requests more than 5 minutes off its clock.
    /// - Returns: `Authorization`, `X-Amz-Date`, `X-Amz-Content-SHA256` and, with a session token,
    ///   `X-Amz-Security-Token`.
    package func signedHeaders(
        method: String,
        url path: String,
        query: String?,
        host: String,
        headers: [(String, String)],
        body: ByteBuffer,
        date: Date
    ) -> [(name: String, value: String)] {
        let amzDate = Self.amzDate(date)
        let payloadHash = Self.payloadHash(body)

        var toSign: [(String, String)] = [
            ("host", host),
            ("x-amz-date", amzDate),
            ("x-amz-content-sha256", payloadHash),
        ]
        if let token = self.credentials.sessionToken {
            toSign.append(("x-amz-security-token", token))
        }
        for (name, value) in headers {
            let lowercased = Self.lowercasedASCII(name)
            switch lowercased {
            case "host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization":
                continue  // Ours to set; a caller's copy would be signed twice or disagree with ours.
            case "content-type":
                toSign.append((lowercased, value))
            default:
                if lowercased.hasPrefix("x-amz-") {
                    toSign.append((lowercased, value))
                }
            }
        }

        let signature = self.sign(
            method: method,
            path: path,
            query: query,
            headers: toSign,
            payloadHash: payloadHash,
            amzDate: amzDate
        )
        var result: [(name: String, value: String)] = [
            (name: "Authorization", value: signature.authorization),
            (name: "X-Amz-Date", value: amzDate),
            (name: "X-Amz-Content-SHA256", value: payloadHash),
        ]
        if let token = self.credentials.sessionToken {
            result.append((name: "X-Amz-Security-Token", value: token))
        }
        return result
    }
}

// MARK: - The three stages

extension SigV4Signer {
    /// Every intermediate of one signing, for tests and for debugging a mismatch with AWS's
    /// `SignatureDoesNotMatch` message (which quotes its canonical request and string to sign).
    ///
    /// - Warning: `signature` and `authorization` are credentials for this request; don't log them.
    package struct Signature: Sendable, Hashable {
        package var canonicalRequest: String
        package var stringToSign: String
        /// Lowercased names joined with `;`, e.g. `content-type;host;x-amz-date`.
        package var signedHeaders: String
        /// 64 lowercase hex digits.
        package var signature: String
        /// The complete `Authorization` header value.
        package var authorization: String
    }

    /// Signs exactly the headers given: the general form under ``signedHeaders(method:url:query:host:headers:body:date:)``,
    /// and the one AWS's test suite exercises (where the suite signs `host` and `x-amz-date` only).
    ///
    /// - Parameters:
    ///   - headers: Every header to sign, including `host` and `x-amz-date`; names in any case.
    ///   - payloadHash: The hex SHA-256 of the body (or a sentinel such as `UNSIGNED-PAYLOAD`).
    ///   - amzDate: The `x-amz-date` value, `yyyyMMdd'T'HHmmss'Z'`; its first 8 characters are the scope date.
    package func sign(
        method: String,
        path: String,
        query: String?,
        headers: [(String, String)],
        payloadHash: String,
        amzDate: String
    ) -> Signature {
        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(headers)
        var canonicalRequest = ""
        canonicalRequest.reserveCapacity(256 + canonicalHeaders.utf8.count + path.utf8.count)
        canonicalRequest += Self.uppercasedASCII(method)
        canonicalRequest += "\n"
        canonicalRequest += Self.canonicalURI(path)
        canonicalRequest += "\n"
        canonicalRequest += Self.canonicalQueryString(query)
        canonicalRequest += "\n"
        canonicalRequest += canonicalHeaders
        canonicalRequest += "\n"
        canonicalRequest += signedHeaders
        canonicalRequest += "\n"
        canonicalRequest += payloadHash

        let dateStamp = String(amzDate.prefix(8))
        let scope = "\(dateStamp)/\(self.region)/\(self.service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(Self.sha256Hex(canonicalRequest))"

        let signingKey = self.signingKey(dateStamp: dateStamp)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: signingKey)
        let signature = mac.withUnsafeBytes { Self.hex($0) }
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(self.credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(
            canonicalRequest: canonicalRequest,
            stringToSign: stringToSign,
            signedHeaders: signedHeaders,
            signature: signature,
            authorization: authorization
        )
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
    private func signingKey(dateStamp: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array(("AWS4" + self.credentials.secretAccessKey).utf8))
        for part in [dateStamp, self.region, self.service, "aws4_request"] {
            let mac = HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)
            key = SymmetricKey(data: mac)
        }
        return key
    }
}

// MARK: - Canonical pieces

extension SigV4Signer {
    /// `x-amz-date` for a time: `yyyyMMdd'T'HHmmss'Z'` in UTC, fractional seconds dropped.
    package static func amzDate(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        return self.amzDate(secondsSince1970: seconds)
    }

    /// `x-amz-date` for whole seconds since 1970-01-01T00:00:00Z, computed without a calendar or formatter.
    package static func amzDate(secondsSince1970 seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Howard Hinnant's civil_from_days: proleptic Gregorian date for a day count since 1970-01-01.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)

        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        func append(_ value: Int64, digits: Int) {
            var divisor: Int64 = 1
            for _ in 1..<digits { divisor *= 10 }
            var value = value
            while divisor > 0 {
                bytes.append(UInt8(truncatingIfNeeded: value / divisor) &+ UInt8(ascii: "0"))
                value %= divisor
                divisor /= 10
            }
        }
        append(year, digits: 4)
        append(month, digits: 2)
        append(day, digits: 2)
        bytes.append(UInt8(ascii: "T"))
        append(secondOfDay / 3600, digits: 2)
        append(secondOfDay / 60 % 60, digits: 2)
        append(secondOfDay % 60, digits: 2)
        bytes.append(UInt8(ascii: "Z"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Hex SHA-256 of the readable bytes, hashed in place (no copy of the body).
    package static func payloadHash(_ body: ByteBuffer) -> String {
        var hasher = SHA256()
        body.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        return hasher.finalize().withUnsafeBytes { self.hex($0) }
    }

    /// The canonical URI for a non-S3 service: normalise the path as sent, then encode it once more.
    package static func canonicalURI(_ path: String) -> String {
        // botocore `remove_dot_segments`: drop empty and "." segments, let ".." pop, keep the leading
        // slash, and keep a trailing slash when anything is left.
        let segments = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
        var kept: [Substring.UTF8View] = []
        kept.reserveCapacity(segments.count)
        for segment in segments {
            if segment.elementsEqual(".".utf8) {
                continue
            } else if segment.elementsEqual("..".utf8) {
                _ = kept.popLast()
            } else {
                kept.append(segment)
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(path.utf8.count + 16)
        out.append(UInt8(ascii: "/"))
        for (index, segment) in kept.enumerated() {
            if index > 0 { out.append(UInt8(ascii: "/")) }
            self.percentEncode(segment, into: &out)
        }
        if !kept.isEmpty && path.utf8.last == UInt8(ascii: "/") {
            out.append(UInt8(ascii: "/"))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical query string: pairs decoded, re-encoded the AWS way, sorted by name then value.
    package static func canonicalQueryString(_ query: String?) -> String {
        guard let query, !query.isEmpty else { return "" }
        var pairs: [(name: String, value: String)] = []
        for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let name: Substring.UTF8View
            let value: Substring.UTF8View
            if let equals = pair.firstIndex(of: UInt8(ascii: "=")) {
                name = pair[..<equals]
                value = pair[pair.index(after: equals)...]
            } else {
                name = pair
                value = pair[pair.endIndex...]
            }
            var encodedName: [UInt8] = []
            var encodedValue: [UInt8] = []
            self.percentEncode(self.percentDecode(name), into: &encodedName)
            self.percentEncode(self.percentDecode(value), into: &encodedValue)
            pairs.append(
                (String(decoding: encodedName, as: UTF8.self), String(decoding: encodedValue, as: UTF8.self))
            )
        }
        // Encoded strings are ASCII, so String ordering is byte ordering, as AWS requires.
        pairs.sort { $0.name != $1.name ? $0.name < $1.name : $0.value < $1.value }
        var out = ""
        for (index, pair) in pairs.enumerated() {
            if index > 0 { out += "&" }
            out += pair.name
            out += "="
            out += pair.value
        }
        return out
    }

    /// The canonical headers block (each line ending in `\n`) and the signed-headers list.
    static func canonicalHeaders(_ headers: [(String, String)]) -> (canonical: String, signed: String) {
        // Stable by position so repeated names keep their order when joined with ",".
        let normalized = headers.enumerated().map { (offset, header) in
            (name: self.lowercasedASCII(header.0), value: self.trimAll(header.1), offset: offset)
        }.sorted { $0.name != $1.name ? $0.name < $1.name : $0.offset < $1.offset }

        var canonical = ""
        var signed = ""
        var previous: String?
        for header in normalized {
            if header.name == previous {
                canonical += ","
                canonical += header.value
                continue
            }
            if previous != nil {
                canonical += "\n"
                signed += ";"
            }
            canonical += header.name
            canonical += ":"
            canonical += header.value
            signed += header.name
            previous = header.name
        }
        if previous != nil {
            canonical += "\n"
        }
        return (canonical, signed)
    }

    /// AWS `Trimall`: strip leading and trailing whitespace and collapse inner runs to one space.
    static func trimAll(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        var pendingSpace = false
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), 0x0B, 0x0C:
                pendingSpace = !out.isEmpty
            default:
                if pendingSpace {
                    out.append(UInt8(ascii: " "))
                    pendingSpace = false
                }
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - Bytes

extension SigV4Signer {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
    private static let upperHexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Lowercase hex of raw bytes, two table look-ups per byte.
    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            var index = 0
            for byte in bytes {
                out[index] = self.hexDigits[Int(byte >> 4)]
                out[index + 1] = self.hexDigits[Int(byte & 0x0F)]
                index += 2
            }
            return index
        }
    }

    static func sha256Hex(_ text: String) -> String {
        var hasher = SHA256()
        var text = text
        text.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        return hasher.finalize().withUnsafeBytes { self.hex($0) }
    }

    /// RFC 3986 unreserved characters: the only bytes SigV4 leaves unencoded (besides `/` in paths,
    /// which `canonicalURI` handles by encoding segment by segment).
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
            UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Appends `bytes` URI-encoded the SigV4 way: `%XX` with uppercase hex for all but unreserved bytes.
    private static func percentEncode(_ bytes: some Sequence<UInt8>, into out: inout [UInt8]) {
        for byte in bytes {
            if self.isUnreserved(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(self.upperHexDigits[Int(byte >> 4)])
                out.append(self.upperHexDigits[Int(byte & 0x0F)])
            }
        }
    }

    /// Decodes `%XX` escapes; a `%` not followed by two hex digits stays literal. `+` stays `+`
    /// (AWS query strings use `%20` for space).
    private static func percentDecode(_ bytes: Substring.UTF8View) -> [UInt8] {
        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                let first = bytes.index(after: index)
                if first < bytes.endIndex {
                    let second = bytes.index(after: first)
                    if second < bytes.endIndex, let high = hexValue(bytes[first]), let low = hexValue(bytes[second]) {
                        out.append(high << 4 | low)
                        index = bytes.index(after: second)
                        continue
                    }
                }
            }
            out.append(byte)
            index = bytes.index(after: index)
        }
        return out
    }

    static func lowercasedASCII(_ text: String) -> String {
        String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    static func uppercasedASCII(_ text: String) -> String {
        String(decoding: text.utf8.map { (0x61...0x7A).contains($0) ? $0 & ~0x20 : $0 }, as: UTF8.self)
    }
}
