/// The release this build is (`sluice --version`, the console's status).
package enum SluiceVersion {
    package static let current = "0.7.0"
}
