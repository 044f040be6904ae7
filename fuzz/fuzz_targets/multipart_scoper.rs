//! Fuzzes the streaming multipart `user` rewriter: any body, split anywhere, never panics, and the
//! split gives the same output (or the same refusal) as the whole body.
#![no_main]

use dify_gateway::scope::multipart::MultipartScoper;
use libfuzzer_sys::fuzz_target;

fn run(chunks: &[&[u8]]) -> Option<Vec<u8>> {
    let mut s = MultipartScoper::new("b0undary", "acme");
    let mut out = Vec::new();
    for c in chunks {
        s.feed(c, &mut out).ok()?;
    }
    s.finish(&mut out).ok()?;
    Some(out)
}

fuzz_target!(|input: (u16, &[u8])| {
    let (cut, data) = input;
    let at = usize::from(cut) % (data.len() + 1);
    assert_eq!(run(&[data]), run(&[&data[..at], &data[at..]]));
});
