//! The OTLP trace protobuf, written straight from the SDK's span data:
//! a [`Sink`] is either a byte buffer or a counter, so each message is
//! one function that measures and writes; proto3 defaults are left out,
//! a present message or oneof value is written even when empty, as prost
//! does. Field numbers are `opentelemetry/proto/trace/v1/trace.proto`'s
//! (and `common`, `resource`, `collector/trace`); the test compares the
//! result with `opentelemetry-proto`'s conversion of the same spans.

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use std::time::SystemTime;

/// The `Resource` message, encoded once when the provider sets it.
pub(super) fn resource(resource: &Resource) -> Vec<u8> {
    let mut out = Vec::with_capacity(ResourceMsg(resource).len());
    ResourceMsg(resource).write(&mut out);
    out
}

/// `ExportTraceServiceRequest { resource_spans: [ResourceSpans { resource,
/// scope_spans: [per scope], schema_url }] }` for `spans`, whose resource
/// message is `resource` (already encoded): every length is measured
/// first, then each byte is written once into a buffer of the exact size.
pub(super) fn request(spans: &[SpanData], resource: &[u8], resource_schema: &str) -> Vec<u8> {
    // Scopes in first-seen order (a process has one or two).
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    for s in spans {
        if !scopes.contains(&&s.instrumentation_scope) {
            scopes.push(&s.instrumentation_scope);
        }
    }
    let span_lens: Vec<usize> = spans.iter().map(|s| Span(s).len()).collect();
    let scope_lens: Vec<usize> = scopes
        .iter()
        .map(|scope| {
            let mut n = Len(0);
            n.message(1, &Scope(scope));
            for (s, len) in spans.iter().zip(&span_lens) {
                if &s.instrumentation_scope == *scope {
                    n.0 += field_len(2, *len);
                }
            }
            string(&mut n, 3, scope.schema_url().unwrap_or_default());
            n.0
        })
        .collect();
    let mut rs = Len(field_len(1, resource.len()));
    rs.0 += scope_lens.iter().map(|n| field_len(2, *n)).sum::<usize>();
    string(&mut rs, 3, resource_schema);
    let total = field_len(1, rs.0);
    let mut out = Vec::with_capacity(total);
    out.header(1, rs.0);
    out.message_bytes(1, resource);
    for (scope, len) in scopes.iter().zip(&scope_lens) {
        out.header(2, *len);
        out.message(1, &Scope(scope));
        for (s, len) in spans.iter().zip(&span_lens) {
            if &s.instrumentation_scope == *scope {
                out.header(2, *len);
                Span(s).write(&mut out);
            }
        }
        string(&mut out, 3, scope.schema_url().unwrap_or_default());
    }
    string(&mut out, 3, resource_schema);
    debug_assert_eq!(out.len(), total, "measured and written lengths differ");
    out
}

/// The size of a length-delimited field `tag` holding `len` bytes.
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// Where protobuf goes: a byte buffer, or a counter measuring a message
/// before its length is written.
trait Sink: Sized {
    fn key(&mut self, tag: u32, wt: WireType);
    fn varint(&mut self, v: u64);
    fn raw(&mut self, b: &[u8]);
    fn fixed32(&mut self, v: u32);
    fn fixed64(&mut self, v: u64);
    /// An embedded message field (written even when empty, as prost does
    /// for a present message).
    fn message<M: Message>(&mut self, tag: u32, m: &M);
    /// An embedded message already encoded.
    fn message_bytes(&mut self, tag: u32, body: &[u8]) {
        self.header(tag, body.len());
        self.raw(body);
    }
    /// The key and length of a length-delimited field.
    fn header(&mut self, tag: u32, len: usize) {
        self.key(tag, WireType::LengthDelimited);
        self.varint(len as u64);
    }
}

/// Counts bytes.
struct Len(usize);

impl Sink for Len {
    fn key(&mut self, tag: u32, _: WireType) {
        self.0 += key_len(tag);
    }
    fn varint(&mut self, v: u64) {
        self.0 += encoded_len_varint(v);
    }
    fn raw(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
    fn fixed32(&mut self, _: u32) {
        self.0 += 4;
    }
    fn fixed64(&mut self, _: u64) {
        self.0 += 8;
    }
    fn message<M: Message>(&mut self, tag: u32, m: &M) {
        self.0 += field_len(tag, m.len());
    }
}

impl Sink for Vec<u8> {
    fn key(&mut self, tag: u32, wt: WireType) {
        encode_key(tag, wt, self);
    }
    fn varint(&mut self, v: u64) {
        encode_varint(v, self);
    }
    fn raw(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    fn fixed32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn fixed64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn message<M: Message>(&mut self, tag: u32, m: &M) {
        self.header(tag, m.len());
        m.write(self);
    }
}

/// A message written field by field into any [`Sink`].
trait Message {
    fn write<S: Sink>(&self, s: &mut S);
    fn len(&self) -> usize {
        let mut n = Len(0);
        self.write(&mut n);
        n.0
    }
}

// proto3 scalars: a default value is not written.
fn bytes<S: Sink>(s: &mut S, tag: u32, b: &[u8]) {
    if !b.is_empty() {
        s.key(tag, WireType::LengthDelimited);
        s.varint(b.len() as u64);
        s.raw(b);
    }
}

fn string<S: Sink>(s: &mut S, tag: u32, v: &str) {
    bytes(s, tag, v.as_bytes());
}

fn uint<S: Sink>(s: &mut S, tag: u32, v: u64) {
    if v != 0 {
        s.key(tag, WireType::Varint);
        s.varint(v);
    }
}

fn fixed32<S: Sink>(s: &mut S, tag: u32, v: u32) {
    if v != 0 {
        s.key(tag, WireType::ThirtyTwoBit);
        s.fixed32(v);
    }
}

fn fixed64<S: Sink>(s: &mut S, tag: u32, v: u64) {
    if v != 0 {
        s.key(tag, WireType::SixtyFourBit);
        s.fixed64(v);
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `SpanFlags`: the W3C flags, plus whether the parent (or linked) context
/// is known remote, as the specification's bits 8 and 9.
fn flags(trace_flags: opentelemetry::trace::TraceFlags, remote: bool) -> u32 {
    u32::from(trace_flags.to_u8()) | 0x100 | if remote { 0x200 } else { 0 }
}

/// `opentelemetry.proto.trace.v1.Span`.
struct Span<'a>(&'a SpanData);

impl Message for Span<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let d = self.0;
        let sc = &d.span_context;
        bytes(s, 1, &sc.trace_id().to_bytes());
        bytes(s, 2, &sc.span_id().to_bytes());
        let state = sc.trace_state().header();
        string(s, 3, &state);
        if d.parent_span_id != opentelemetry::trace::SpanId::INVALID {
            bytes(s, 4, &d.parent_span_id.to_bytes());
        }
        string(s, 5, &d.name);
        uint(s, 6, kind(&d.span_kind));
        fixed64(s, 7, nanos(d.start_time));
        fixed64(s, 8, nanos(d.end_time));
        for kv in &d.attributes {
            s.message(9, &Kv(kv));
        }
        uint(s, 10, u64::from(d.dropped_attributes_count));
        for e in d.events.iter() {
            s.message(11, &Event(e));
        }
        uint(s, 12, u64::from(d.events.dropped_count));
        for l in d.links.iter() {
            s.message(13, &Link(l));
        }
        uint(s, 14, u64::from(d.links.dropped_count));
        s.message(15, &StatusMsg(&d.status));
        fixed32(s, 16, flags(sc.trace_flags(), d.parent_span_is_remote));
    }
}

fn kind(k: &SpanKind) -> u64 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// `Span.Event`.
struct Event<'a>(&'a opentelemetry::trace::Event);

impl Message for Event<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        fixed64(s, 1, nanos(self.0.timestamp));
        string(s, 2, &self.0.name);
        for kv in &self.0.attributes {
            s.message(3, &Kv(kv));
        }
        uint(s, 4, u64::from(self.0.dropped_attributes_count));
    }
}

/// `Span.Link`.
struct Link<'a>(&'a opentelemetry::trace::Link);

impl Message for Link<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let sc = &self.0.span_context;
        bytes(s, 1, &sc.trace_id().to_bytes());
        bytes(s, 2, &sc.span_id().to_bytes());
        string(s, 3, &sc.trace_state().header());
        for kv in &self.0.attributes {
            s.message(4, &Kv(kv));
        }
        uint(s, 5, u64::from(self.0.dropped_attributes_count));
        fixed32(s, 6, flags(sc.trace_flags(), sc.is_remote()));
    }
}

/// `Status { message = 2, code = 3 }`.
struct StatusMsg<'a>(&'a Status);

impl Message for StatusMsg<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        match self.0 {
            Status::Unset => {}
            Status::Ok => uint(s, 3, 1),
            Status::Error { description } => {
                string(s, 2, description);
                uint(s, 3, 2);
            }
        }
    }
}

/// `InstrumentationScope { name, version, attributes }`.
struct Scope<'a>(&'a InstrumentationScope);

impl Message for Scope<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        string(s, 1, self.0.name());
        string(s, 2, self.0.version().unwrap_or_default());
        for kv in self.0.attributes() {
            s.message(3, &Kv(kv));
        }
    }
}

/// `Resource { attributes }`.
struct ResourceMsg<'a>(&'a Resource);

impl Message for ResourceMsg<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        for (k, v) in self.0.iter() {
            s.message(1, &KvRef(k.as_str(), v));
        }
    }
}

/// `KeyValue { key, value: AnyValue }`.
struct Kv<'a>(&'a KeyValue);

impl Message for Kv<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        KvRef(self.0.key.as_str(), &self.0.value).write(s);
    }
}

struct KvRef<'a>(&'a str, &'a Value);

impl Message for KvRef<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        string(s, 1, self.0);
        s.message(2, &Any(self.1));
    }
}

/// `AnyValue`: the one set field is written even when it holds a default
/// (a oneof's presence is its value).
struct Any<'a>(&'a Value);

impl Message for Any<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        match self.0 {
            Value::String(v) => s.message_bytes(1, v.as_str().as_bytes()),
            Value::Bool(v) => {
                s.key(2, WireType::Varint);
                s.varint(u64::from(*v));
            }
            Value::I64(v) => {
                s.key(3, WireType::Varint);
                s.varint(*v as u64);
            }
            Value::F64(v) => {
                s.key(4, WireType::SixtyFourBit);
                s.fixed64(v.to_bits());
            }
            Value::Array(a) => s.message(5, &ArrayMsg(a)),
            // A value kind added after this was written: sent as its text.
            other => s.message_bytes(1, other.as_str().as_bytes()),
        }
    }
}

/// `ArrayValue { values = 1 }`.
struct ArrayMsg<'a>(&'a Array);

impl Message for ArrayMsg<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        match self.0 {
            Array::Bool(v) => v.iter().for_each(|x| s.message(1, &Any(&Value::Bool(*x)))),
            Array::I64(v) => v.iter().for_each(|x| s.message(1, &Any(&Value::I64(*x)))),
            Array::F64(v) => v.iter().for_each(|x| s.message(1, &Any(&Value::F64(*x)))),
            Array::String(v) => v.iter().for_each(|x| s.message(1, &AnyStr(x.as_str()))),
            _ => {}
        }
    }
}

struct AnyStr<'a>(&'a str);

impl Message for AnyStr<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        s.message_bytes(1, self.0.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::StringValue;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;
    use std::str::FromStr;
    use std::time::Duration;

    fn context(t: u128, s: u64, state: &str, remote: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from(t),
            SpanId::from(s),
            TraceFlags::SAMPLED,
            remote,
            TraceState::from_str(state).unwrap_or_default(),
        )
    }

    /// A span using every field the wire format has.
    fn full(scope: &InstrumentationScope) -> SpanData {
        let attrs = vec![
            KeyValue::new("messaging.system", "fanout"),
            KeyValue::new("owned", String::from("é ünïcode")),
            KeyValue::new("empty", ""),
            KeyValue::new("n", -42_i64),
            KeyValue::new("zero", 0_i64),
            KeyValue::new("ok", true),
            KeyValue::new("no", false),
            KeyValue::new("f", 1.5_f64),
            KeyValue::new(
                "a.s",
                Value::Array(Array::String(vec![
                    StringValue::from("x"),
                    StringValue::from(""),
                ])),
            ),
            KeyValue::new("a.i", Value::Array(Array::I64(vec![1, -2]))),
            KeyValue::new("a.b", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("a.f", Value::Array(Array::F64(vec![0.0, 2.5]))),
        ];
        let mut events = SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "retry",
            SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            vec![KeyValue::new("attempt", 2_i64)],
            1,
        ));
        events.dropped_count = 3;
        let mut links = SpanLinks::default();
        links.links.push(opentelemetry::trace::Link::new(
            context(7, 8, "congo=t61,rojo=00f067aa0ba902b7", true),
            vec![KeyValue::new("fanout.waitpoint.id", "wp-1")],
            2,
        ));
        links
            .links
            .push(opentelemetry::trace::Link::with_context(context(
                9, 10, "", false,
            )));
        links.dropped_count = 1;
        SpanData {
            span_context: context(
                0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                0x00f0_67aa_0ba9_02b7,
                "fanout=replay:r1",
                false,
            ),
            parent_span_id: SpanId::from(5),
            parent_span_is_remote: true,
            span_kind: SpanKind::Consumer,
            name: "process order.placed".into(),
            start_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_001),
            end_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_900_000_000),
            attributes: attrs,
            dropped_attributes_count: 4,
            events,
            links,
            status: Status::error("handler failed"),
            instrumentation_scope: scope.clone(),
        }
    }

    /// A root span with nothing optional.
    fn bare(scope: &InstrumentationScope, status: Status, kind: SpanKind) -> SpanData {
        SpanData {
            span_context: context(1, 2, "", false),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: kind,
            name: String::from("complete").into(),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH + Duration::from_millis(1),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scope.clone(),
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_batch_decodes_to_exactly_what_the_library_sends() {
        let fanout = InstrumentationScope::builder("fanout").build();
        let other = InstrumentationScope::builder("handler")
            .with_version("1.2.3")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .with_attributes([KeyValue::new("lib", "x")])
            .build();
        let spans = vec![
            full(&fanout),
            bare(&fanout, Status::Unset, SpanKind::Internal),
            bare(&other, Status::Ok, SpanKind::Producer),
            full(&other),
            bare(&fanout, Status::error(""), SpanKind::Server),
            bare(&other, Status::Unset, SpanKind::Client),
        ];
        let resource = Resource::builder_empty()
            .with_service_name("fanout-test")
            .with_attributes([KeyValue::new("host.name", "h"), KeyValue::new("pid", 7_i64)])
            .with_schema_url([], "https://opentelemetry.io/schemas/1.30.0")
            .build();
        let encoded = super::resource(&resource);
        assert_eq!(encoded.len(), ResourceMsg(&resource).len());
        let ours = request(&spans, &encoded, resource.schema_url().unwrap_or_default());
        let ours = ExportTraceServiceRequest::decode(ours.as_slice()).unwrap();
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans,
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(ours, theirs);
        assert_eq!(ours.resource_spans[0].scope_spans.len(), 2);
        assert_eq!(ours.resource_spans[0].scope_spans[0].spans.len(), 3);
    }
}
