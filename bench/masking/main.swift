// Masking throughput, one core: compiled by run.sh together with Sources/Masking (whole module,
// -O), so the figure is the masker's own, without the CLI or file I/O.
import Foundation

func threadCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let mebibytes = Int(arguments[1]) else {
    print("usage: masking-bench MIB FILE…")
    exit(2)
}
var sample: [UInt8] = []
for path in arguments.dropFirst(2) { sample += Array(FileManager.default.contents(atPath: path) ?? Data()) }
var input: [UInt8] = []
input.reserveCapacity(mebibytes << 20)
while input.count < mebibytes << 20 { input += sample }
let chunk = 32768

for mode in MaskingMode.allCases {
    var best = 0.0
    var masks = 0, outputBytes = 0
    for _ in 0..<3 {
        var masker = StreamMasker(mode: mode)
        var output = MaskedOutput()
        masks = 0
        outputBytes = 0
        let started = threadCPUSeconds()
        input.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let end = min(raw.count, offset + chunk)
                masker.feed(UnsafeRawBufferPointer(rebasing: raw[offset..<end]), into: &output)
                masks += output.masks.count
                outputBytes += output.bytes.count
                output.bytes.removeAll(keepingCapacity: true)
                output.masks.removeAll(keepingCapacity: true)
                offset = end
            }
            masker.flush(into: &output)
            masks += output.masks.count
            outputBytes += output.bytes.count
        }
        let seconds = threadCPUSeconds() - started
        best = max(best, Double(input.count) / seconds / 1e6)
    }
    print("\(mode.rawValue): \(String(format: "%.0f", best)) MB/s of CPU time (best of 3), \(input.count >> 20) MiB in \(chunk)-byte feeds, \(masks) masks, \(outputBytes) bytes out")
}
