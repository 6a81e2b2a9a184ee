/// A static AWS key pair, optionally with an STS session token, used to sign upstream Bedrock calls.
///
/// The secret and the token never appear in `description`, `debugDescription` or a `Mirror` (so
/// `print`, string interpolation, `dump` and logging of the value are all safe). Only the access key
/// id, which AWS treats as an identifier rather than a secret, is shown.
///
/// ```swift
/// let file = try? String(contentsOfFile: home + "/.aws/credentials", encoding: .utf8)
/// guard let credentials = try AWSCredentials.load(
///     environment: ProcessInfo.processInfo.environment,
///     profile: nil,
///     credentialsFileContents: file
/// ) else { /* no credentials configured */ }
/// ```
package struct AWSCredentials: Sendable, Hashable {
    package var accessKeyID: String
    package var secretAccessKey: String
    package var sessionToken: String?

    package init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

extension AWSCredentials: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    package var description: String {
        let token = self.sessionToken == nil ? "nil" : "<redacted>"
        return "AWSCredentials(accessKeyID: \(self.accessKeyID), secretAccessKey: <redacted>, sessionToken: \(token))"
    }

    package var debugDescription: String { self.description }

    // `dump` and debuggers walk the Mirror, not `description`: keep the secret out of it too.
    package var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "accessKeyID": self.accessKeyID,
                "secretAccessKey": "<redacted>",
                "sessionToken": self.sessionToken == nil ? "nil" : "<redacted>",
            ],
            displayStyle: .struct
        )
    }
}

// MARK: - Loading

extension AWSCredentials {
    /// Environment variable holding the access key id.
    package static let accessKeyIDVariable = "AWS_ACCESS_KEY_ID"
    /// Environment variable holding the secret access key.
    package static let secretAccessKeyVariable = "AWS_SECRET_ACCESS_KEY"
    /// Environment variable holding the optional STS session token.
    package static let sessionTokenVariable = "AWS_SESSION_TOKEN"
    /// Environment variable naming the profile to read from the credentials file.
    package static let profileVariable = "AWS_PROFILE"

    /// Finds credentials the way the AWS CLI does for static keys: environment first, then a profile of
    /// the shared credentials file.
    ///
    /// 1. If `AWS_ACCESS_KEY_ID` or `AWS_SECRET_ACCESS_KEY` is set (non-empty) in `environment`, both
    ///    must be; `AWS_SESSION_TOKEN` is added when set. The file is not read.
    /// 2. Otherwise the profile named by `profile`, else `AWS_PROFILE`, else `default`, is read from
    ///    `credentialsFileContents` (the text of `~/.aws/credentials`: `[name]` sections, `key = value`
    ///    lines, whole-line comments starting with `#` or `;`). It must hold `aws_access_key_id` and
    ///    `aws_secret_access_key`; `aws_session_token` (or the legacy `aws_security_token`) is optional.
    ///
    /// The function reads no files and no process state, so the caller decides where the text comes from.
    ///
    /// - Parameters:
    ///   - environment: The process environment (or a test dictionary).
    ///   - profile: An explicit profile name; overrides `AWS_PROFILE`.
    ///   - credentialsFileContents: The credentials file's text, or `nil` when there is no file.
    /// - Returns: The credentials, or `nil` when nothing is configured: no keys in the environment and no
    ///   `default` profile (an explicitly named profile that is missing is an error instead).
    /// - Throws: ``AWSCredentials/LoadingError`` when a source is present but unusable. Its message names
    ///   variables, profiles, keys and line numbers, never a value read from them.
    package static func load(
        environment: [String: String],
        profile: String?,
        credentialsFileContents: String?
    ) throws(LoadingError) -> AWSCredentials? {
        if let fromEnvironment = try Self.fromEnvironment(environment) {
            return fromEnvironment
        }
        let explicitProfile = profile ?? environment[Self.profileVariable].flatMap { $0.isEmpty ? nil : $0 }
        let profileName = explicitProfile ?? "default"
        guard let contents = credentialsFileContents else {
            if explicitProfile != nil {
                throw .profileNotFound(profileName)
            }
            return nil
        }
        let sections = try CredentialsFile.parse(contents)
        guard let section = sections[profileName] else {
            if explicitProfile != nil {
                throw .profileNotFound(profileName)
            }
            return nil
        }
        guard let accessKeyID = section["aws_access_key_id"], !accessKeyID.isEmpty else {
            throw .incompleteProfile(profileName, missingKey: "aws_access_key_id")
        }
        guard let secretAccessKey = section["aws_secret_access_key"], !secretAccessKey.isEmpty else {
            throw .incompleteProfile(profileName, missingKey: "aws_secret_access_key")
        }
        let token = section["aws_session_token"] ?? section["aws_security_token"]
        return AWSCredentials(
            accessKeyID: accessKeyID,
            secretAccessKey: secretAccessKey,
            sessionToken: token.flatMap { $0.isEmpty ? nil : $0 }
        )
    }

    private static func fromEnvironment(_ environment: [String: String]) throws(LoadingError) -> AWSCredentials? {
        func value(_ name: String) -> String? {
            guard let value = environment[name], !value.isEmpty else { return nil }
            return value
        }
        let accessKeyID = value(Self.accessKeyIDVariable)
        let secretAccessKey = value(Self.secretAccessKeyVariable)
        switch (accessKeyID, secretAccessKey) {
        case (nil, nil):
            return nil
        case (.some, nil):
            throw .incompleteEnvironment(missingVariable: Self.secretAccessKeyVariable)
        case (nil, .some):
            throw .incompleteEnvironment(missingVariable: Self.accessKeyIDVariable)
        case (.some(let accessKeyID), .some(let secretAccessKey)):
            return AWSCredentials(
                accessKeyID: accessKeyID,
                secretAccessKey: secretAccessKey,
                sessionToken: value(Self.sessionTokenVariable)
            )
        }
    }
}

// MARK: - Errors

extension AWSCredentials {
    /// Why credentials could not be loaded. The message never contains a key, secret or token value.
    package struct LoadingError: Error, Hashable, CustomStringConvertible {
        /// A stable, bounded code, safe as a metric label.
        package struct Code: Hashable, Sendable, CustomStringConvertible {
            private enum Base: String, Hashable, Sendable {
                case incompleteEnvironment
                case profileNotFound
                case incompleteProfile
                case malformedFile
            }

            private let base: Base
            private init(_ base: Base) { self.base = base }

            /// Only one of the access key id and the secret is set in the environment.
            package static let incompleteEnvironment = Code(.incompleteEnvironment)
            /// An explicitly named profile (argument or `AWS_PROFILE`) is not in the file, or there is no file.
            package static let profileNotFound = Code(.profileNotFound)
            /// The profile lacks the access key id or the secret.
            package static let incompleteProfile = Code(.incompleteProfile)
            /// A line of the credentials file is neither a section, a `key = value` pair nor a comment.
            package static let malformedFile = Code(.malformedFile)

            package var description: String { self.base.rawValue }
        }

        package let code: Code
        /// Human-readable detail: names and line numbers only.
        package let message: String

        package var description: String { "AWSCredentials.LoadingError.\(self.code): \(self.message)" }

        static func incompleteEnvironment(missingVariable: String) -> Self {
            Self(code: .incompleteEnvironment, message: "\(missingVariable) is not set, but the other AWS key variable is")
        }

        static func profileNotFound(_ profile: String) -> Self {
            Self(code: .profileNotFound, message: "profile '\(profile)' not found in the AWS credentials file")
        }

        static func incompleteProfile(_ profile: String, missingKey: String) -> Self {
            Self(code: .incompleteProfile, message: "profile '\(profile)' has no \(missingKey)")
        }

        static func malformedFile(line: Int, reason: String) -> Self {
            Self(code: .malformedFile, message: "AWS credentials file line \(line): \(reason)")
        }
    }
}

// MARK: - INI parsing

/// The subset of INI the AWS shared credentials file uses.
private enum CredentialsFile {
    /// Section name → (lowercased key → value). A section repeated later adds to (and overrides) the
    /// earlier one, as Python's configparser in non-strict mode would.
    static func parse(_ contents: String) throws(AWSCredentials.LoadingError) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        // Set after `key =` with an empty value: indented lines that follow are a nested block
        // (e.g. `s3 =` then `  max_concurrent_requests = 20`), which credentials never use; skip them.
        var inNestedBlock = false
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so split on both forms.
        let lines = contents.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for rawLine in lines {
            lineNumber += 1
            let isIndented = rawLine.first == " " || rawLine.first == "\t"
            let line = trimmed(rawLine)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") {
                continue
            }
            if inNestedBlock && isIndented {
                continue
            }
            inNestedBlock = false
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count >= 2 else {
                    throw .malformedFile(line: lineNumber, reason: "section header without a closing ']'")
                }
                let name = trimmed(line.dropFirst().dropLast())
                guard !name.isEmpty else {
                    throw .malformedFile(line: lineNumber, reason: "empty section name")
                }
                current = String(name)
                if sections[String(name)] == nil {
                    sections[String(name)] = [:]
                }
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw .malformedFile(line: lineNumber, reason: "expected 'key = value'")
            }
            guard let section = current else {
                throw .malformedFile(line: lineNumber, reason: "'key = value' before any [section]")
            }
            let key = trimmed(line[..<equals]).lowercased()
            guard !key.isEmpty else {
                throw .malformedFile(line: lineNumber, reason: "empty key")
            }
            let value = trimmed(line[line.index(after: equals)...])
            if value.isEmpty {
                inNestedBlock = true
            }
            sections[section, default: [:]][key] = String(value)
        }
        return sections
    }

    private static func trimmed(_ text: Substring) -> Substring {
        // Also drops a trailing "\r" from files with CRLF line endings.
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = text.firstIndex(where: { !isSpace($0) }),
            let last = text.lastIndex(where: { !isSpace($0) })
        else {
            return text[text.endIndex...]
        }
        return text[first...last]
    }
}
