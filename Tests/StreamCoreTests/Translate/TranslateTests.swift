/// Groups the Translate suites so `swift test --filter Translate` selects them all.
struct TranslateTests {}
