/// One step of a streamed answer, in the order both stream dialects share; each step is one frame.
enum ContentStep: Equatable {
    case messageStart
    /// A block's start frame. ConverseStream sends one for tool blocks only; Anthropic for every block.
    case blockStart(block: Int)
    case reasoningDelta(block: Int, piece: Int)
    case signatureDelta(block: Int)
    case textDelta(block: Int, piece: Int)
    case toolDelta(block: Int, tool: Int, piece: Int)
    case blockStop(block: Int)
    /// Converse `messageStop` / Anthropic `message_delta`.
    case messageStop
    /// Converse `metadata` / Anthropic `message_stop`.
    case trailer
}

/// Walks a ``ResponsePlan`` step by step without materialising the steps, so a stream of a million
/// deltas costs no memory up front.
struct ContentCursor {
    private enum Segment {
        case single(ContentStep)
        case reasoning(block: Int, count: Int)
        case text(block: Int, count: Int)
        case tool(block: Int, tool: Int, count: Int)

        var count: Int {
            switch self {
            case .single: 1
            case .reasoning(_, let count), .text(_, let count), .tool(_, _, let count): count
            }
        }

        func step(at offset: Int) -> ContentStep {
            switch self {
            case .single(let step): step
            case .reasoning(let block, let count):
                offset == count - 1 ? .signatureDelta(block: block) : .reasoningDelta(block: block, piece: offset)
            case .text(let block, _): .textDelta(block: block, piece: offset)
            case .tool(let block, let tool, _): .toolDelta(block: block, tool: tool, piece: offset)
            }
        }
    }

    private let segments: [Segment]
    private var segmentIndex = 0
    private var offset = 0
    /// Frames in the whole stream.
    let frameCount: Int

    /// - Parameter startsEveryBlock: Anthropic sends `content_block_start` for thinking and text
    ///   blocks too; ConverseStream starts only tool blocks.
    init(plan: ResponsePlan, startsEveryBlock: Bool) {
        var segments: [Segment] = [.single(.messageStart)]
        if plan.reasoning {
            if startsEveryBlock { segments.append(.single(.blockStart(block: 0))) }
            // The reasoning text pieces, then one signature delta.
            segments.append(.reasoning(block: 0, count: ResponsePlan.reasoningPieces.count + 1))
            segments.append(.single(.blockStop(block: 0)))
        }
        if plan.hasText {
            let block = plan.textBlockIndex
            if startsEveryBlock { segments.append(.single(.blockStart(block: block))) }
            segments.append(.text(block: block, count: plan.textDeltaCount))
            segments.append(.single(.blockStop(block: block)))
        }
        for (tool, call) in plan.toolCalls.enumerated() {
            let block = plan.toolBlockIndex(tool)
            segments.append(.single(.blockStart(block: block)))
            segments.append(.tool(block: block, tool: tool, count: call.pieces.count))
            segments.append(.single(.blockStop(block: block)))
        }
        segments.append(.single(.messageStop))
        segments.append(.single(.trailer))
        self.segments = segments
        self.frameCount = segments.reduce(0) { $0 + $1.count }
    }

    mutating func next() -> ContentStep? {
        while self.segmentIndex < self.segments.count {
            let segment = self.segments[self.segmentIndex]
            if self.offset < segment.count {
                defer { self.offset += 1 }
                return segment.step(at: self.offset)
            }
            self.segmentIndex += 1
            self.offset = 0
        }
        return nil
    }
}
