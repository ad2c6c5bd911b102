//! Cost of the HTTP work done per request: parsing a typical browser request
//! head, re-serializing it for the real server, and decoding a chunked body.

use std::net::IpAddr;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tcpvs::protocols::http::{
    parse_request, parse_response, write_request_head, ChunkedDecoder, ForwardOptions, Limits,
    Method,
};

const REQUEST: &[u8] = b"GET /images/products/2026/summer/shoe-1234.jpg?size=large HTTP/1.1\r\n\
Host: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: image/avif,image/webp,image/png,image/*;q=0.8,*/*;q=0.5\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://shop.example.com/summer\r\n\
Cookie: session=8f2a9c1e4b7d; prefs=dark\r\n\
Connection: keep-alive\r\n\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 22 Nov 2026 04:00:00 GMT\r\n\
Content-Type: image/jpeg\r\nContent-Length: 48213\r\nLast-Modified: Sat, 21 Nov 2026 10:00:00 GMT\r\n\
Connection: keep-alive\r\nETag: \"6560-bc55\"\r\nAccept-Ranges: bytes\r\n\r\n";

fn heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_request", |b| {
        b.iter(|| parse_request(black_box(REQUEST), &limits).unwrap().unwrap())
    });
    group.bench_function("parse_response", |b| {
        b.iter(|| {
            parse_response(black_box(RESPONSE), &Method::Get, &limits)
                .unwrap()
                .unwrap()
        })
    });
    let (head, _) = parse_request(REQUEST, &limits).unwrap().unwrap();
    let options = ForwardOptions {
        client_ip: IpAddr::from([192, 0, 2, 7]),
        backend_host: "",
        forwarded_proto: None,
        forwarded_host: false,
        drop_expect: false,
    };
    let mut out = Vec::with_capacity(1024);
    group.bench_function("write_request_head", |b| {
        b.iter(|| {
            out.clear();
            write_request_head(black_box(&head), &options, &mut out);
        })
    });
    group.finish();
}

fn chunked(c: &mut Criterion) {
    let mut body = Vec::new();
    for _ in 0..64 {
        body.extend_from_slice(b"400\r\n");
        body.extend_from_slice(&[b'x'; 0x400]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_64KiB_in_1KiB_chunks", |b| {
        b.iter(|| {
            let mut decoder = ChunkedDecoder::default();
            let mut at = 0;
            while !decoder.is_done() {
                let (consumed, _event) = decoder.decode(black_box(&body[at..])).unwrap();
                at += consumed;
            }
            at
        })
    });
    group.finish();
}

criterion_group!(benches, heads, chunked);
criterion_main!(benches);
