//! Fuzzes the incremental SSE parser: any bytes, split at a fuzzer-chosen point, must parse without
//! panicking, give the same events as the unsplit input, and keep the buffer within its bound.
#![no_main]

use dify_gateway_fuzz::stream::parser::SseParser;
use libfuzzer_sys::fuzz_target;

fn events(chunks: &[&[u8]]) -> Vec<(Option<String>, Vec<u8>, bool)> {
    let mut p = SseParser::new(1024);
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c, &mut |e| {
            out.push((e.event.map(String::from), e.data.to_vec(), e.truncated))
        });
        assert!(p.buffered() <= 1024 + 64 + 16 + 1024 + 64);
    }
    out
}

fuzz_target!(|input: (u16, &[u8])| {
    let (cut, data) = input;
    let at = usize::from(cut) % (data.len() + 1);
    assert_eq!(events(&[data]), events(&[&data[..at], &data[at..]]));
});
