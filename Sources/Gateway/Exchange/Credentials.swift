package import HTTPTypes

extension TokenAuthenticator {
    /// The token a request carries: `Authorization: Bearer …`, else `x-api-key`.
    package static func credential(in headers: HTTPFields) -> Result<String, AuthenticationFailure> {
        if let authorization = headers[.authorization] {
            // On the UTF-8 bytes: `Substring`'s `count`, `prefix` and `lowercased()` walk characters
            // and allocate, on every request.
            let trimmed = Self.trimmingBlanks(authorization[...])
            if trimmed.utf8.starts(with: "AWS4-HMAC-SHA256".utf8) { return .failure(.sigV4) }
            let scheme = trimmed.utf8.prefix(7)
            if scheme.count == 7, scheme.lazy.map({ (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }).elementsEqual("bearer ".utf8) {
                let token = Self.trimmingBlanks(Substring(trimmed.utf8.dropFirst(7)))
                if !token.isEmpty { return .success(String(token)) }
            }
            if headers[.apiKey] == nil { return .failure(.malformed) }
        }
        if let key = headers[.apiKey].map({ Self.trimmingBlanks($0[...]) }), !key.isEmpty {
            return .success(String(key))
        }
        return .failure(.missing)
    }

    /// The caller a request's credential stands for.
    package func authenticate(_ headers: HTTPFields) async -> Result<Caller, AuthenticationFailure> {
        switch Self.credential(in: headers) {
        case .success(let token): await self.authenticate(token: token)
        case .failure(let failure): .failure(failure)
        }
    }
}

extension GatewayAccess {
    /// The caller, or the 401 to answer, recorded as an audit line.
    package func authenticate(_ request: HTTPRequest, route: String, requestID: String) async -> Result<Caller, GatewayError> {
        switch await self.authenticator.authenticate(request.headerFields) {
        case .success(let caller):
            return .success(caller)
        case .failure(let failure):
            self.ledger.recordUnauthenticated(route: route, failure: failure, requestID: requestID.isEmpty ? Ledger.makeRequestID() : requestID)
            return .failure(failure.gatewayError)
        }
    }
}
