package import HTTPTypes

extension TokenAuthenticator {
    /// The token a request carries: `Authorization: Bearer …`, else `x-api-key`.
    package static func credential(in headers: HTTPFields) -> Result<String, AuthenticationFailure> {
        if let authorization = headers[.authorization] {
            let trimmed = Self.trimmingBlanks(authorization[...])
            if trimmed.hasPrefix("AWS4-HMAC-SHA256") { return .failure(.sigV4) }
            if trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " {
                let token = Self.trimmingBlanks(trimmed.dropFirst(7))
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
