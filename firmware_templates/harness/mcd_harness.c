/* mcudeploy harness library (see mcd_harness.h): framing, CRC-32, HELLO / INFER / BENCH / PROFILE,
 * reset flags. Plain C99, no heap, no printf, no dependency on generated files. */
#include "mcd_harness.h"

#include <string.h>

#define MCD_HEADER_BYTES 12u
#define MCD_INFER_HEAD_BYTES 20u   /* i32 status, u64 cpu elapsed, u64 npu cycles */
#define MCD_PROFILE_HEAD_BYTES 32u /* + u32 stack used, u32 stack size, u32 layers */
#define MCD_PROFILE_LAYER_BYTES 12u /* u32 op index, u64 elapsed */

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320), nibble table: 64 bytes of table, ~2x faster than bitwise. */
static const uint32_t mcd_crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t mcd_harness_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ mcd_crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ mcd_crc_nibble[crc & 15u];
    }
    return ~crc;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v) { put_u16(p, (uint16_t)v); put_u16(p + 2, (uint16_t)(v >> 16)); }
static void put_u64(uint8_t *p, uint64_t v) { put_u32(p, (uint32_t)v); put_u32(p + 4, (uint32_t)(v >> 32)); }
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_u32(const uint8_t *p) { return (uint32_t)get_u16(p) | ((uint32_t)get_u16(p + 2) << 16); }

static uint64_t elapsed(mcd_harness *h, uint32_t t0, uint32_t t1)
{
    const mcd_harness_port *p = h->port;
    return p->timer_elapsed ? p->timer_elapsed(p->ctx, t0, t1) : (uint64_t)(uint32_t)(t1 - t0);
}

/* A frame written as it goes: header, then payload pieces, then the CRC, so replies of any length
 * (outputs, per-layer profiles, HELLO) need no buffer. The pieces must add up to the announced length. */
static void frame_begin(mcd_harness *h, uint8_t type, uint8_t flags, uint16_t seq, uint32_t len)
{
    uint8_t b[MCD_HEADER_BYTES];
    b[0] = 0xA5u;
    b[1] = 0x5Au;
    b[2] = type;
    b[3] = (uint8_t)(flags | h->fresh);
    put_u16(b + 4, seq);
    put_u32(b + 6, len);
    put_u16(b + 10, (uint16_t)mcd_harness_crc32(0, b + 2, 8));
    h->tx_crc = mcd_harness_crc32(0, b + 2, 10);
    h->port->write(h->port->ctx, b, MCD_HEADER_BYTES);
}

static void frame_write(mcd_harness *h, const uint8_t *p, uint32_t n)
{
    if (n == 0) return;
    h->tx_crc = mcd_harness_crc32(h->tx_crc, p, n);
    h->port->write(h->port->ctx, p, n);
}

static void frame_end(mcd_harness *h)
{
    uint8_t c[4];
    put_u32(c, h->tx_crc);
    h->port->write(h->port->ctx, c, 4);
}

void mcd_harness_send(mcd_harness *h, uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *payload,
                      uint32_t len)
{
    frame_begin(h, type, flags, seq, len);
    frame_write(h, payload, len);
    frame_end(h);
}

static void send_error(mcd_harness *h, uint8_t req_type, uint16_t seq, uint8_t code, const char *msg)
{
    uint8_t head[2] = {req_type, code};
    uint32_t n = (uint32_t)strlen(msg);
    frame_begin(h, MCD_MSG_ERROR, 0, seq, 2u + n);
    frame_write(h, head, 2);
    frame_write(h, (const uint8_t *)msg, n);
    frame_end(h);
}

/* -- HELLO: key=value lines, streamed in two passes (count, then write): no buffer, no printf -- */
typedef struct {
    mcd_harness *h;
    int write;
    uint32_t len;
} hello_sink;

static void hello_str(hello_sink *s, const char *str)
{
    uint32_t n = str ? (uint32_t)strlen(str) : 0u;
    if (s->write) frame_write(s->h, (const uint8_t *)str, n);
    s->len += n;
}

static void hello_u64(hello_sink *s, uint64_t v)
{
    char d[21];
    int i = 20;
    d[i] = '\0';
    do {
        d[--i] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v && i > 0);
    hello_str(s, d + i);
}

static void hello_kv(hello_sink *s, const char *k, const char *v)
{
    hello_str(s, k);
    hello_str(s, "=");
    hello_str(s, v);
    hello_str(s, "\n");
}

static void hello_kn(hello_sink *s, const char *k, uint64_t v)
{
    hello_str(s, k);
    hello_str(s, "=");
    hello_u64(s, v);
    hello_str(s, "\n");
}

static void hello_lines(hello_sink *s)
{
    const mcd_harness_info *in = s->h->info;
    const mcd_harness_port *p = s->h->port;
    hello_kn(s, "proto", MCD_HARNESS_PROTOCOL_VERSION);
    hello_kv(s, "sha256", in->model_sha256);
    hello_kv(s, "runtime", in->runtime);
    hello_kv(s, "board", in->board);
    hello_kn(s, "clock_hz", in->clock_hz);
    hello_kn(s, "arena_used", in->arena_used);
    hello_kn(s, "input_bytes", in->input_bytes);
    hello_kn(s, "output_bytes", in->output_bytes);
    hello_kn(s, "max_payload", s->h->rx_size);
    hello_kv(s, "timer", in->timer);
    hello_kn(s, "npu", in->npu);
    hello_kn(s, "layers", p->layer_count ? p->layer_count(p->ctx) : 0u);
    hello_kn(s, "stack_size", in->stack_size);
    hello_kv(s, "io", in->io ? in->io : "");
}

static void send_hello(mcd_harness *h, uint16_t seq, uint8_t flags)
{
    hello_sink s = {h, 0, 0};
    hello_lines(&s);
    frame_begin(h, MCD_MSG_HELLO, flags, seq, s.len);
    s.write = 1;
    hello_lines(&s);
    frame_end(h);
}

void mcd_harness_announce(mcd_harness *h) { send_hello(h, 0, MCD_FLAG_BOOT); }

int mcd_harness_init(mcd_harness *h, const mcd_harness_port *port, const mcd_harness_info *info, uint8_t *rx,
                     uint32_t rx_size, uint8_t *out)
{
    if (!h || !port || !info || !port->write || !port->read || !port->timer_read || !port->run_model || !rx
        || !out || rx_size < MCD_HARNESS_RX_BYTES(info->input_bytes)) {
        return -1;
    }
    h->port = port;
    h->info = info;
    h->rx = rx;
    h->rx_size = rx_size;
    h->out = out;
    h->byte_timeout_ms = 200u;
    h->fresh = MCD_FLAG_FRESH; /* on every reply until the host re-reads HELLO: a reset is noticed */
    h->tx_crc = 0;
    return 0;
}

static void handle_infer(mcd_harness *h, uint16_t seq, uint32_t len)
{
    const mcd_harness_port *p = h->port;
    const uint32_t out_bytes = h->info->output_bytes;
    if (len != h->info->input_bytes) {
        send_error(h, MCD_MSG_INFER, seq, MCD_ERR_BAD_LENGTH, "INFER payload must be exactly input_bytes");
        return;
    }
    uint8_t head[MCD_INFER_HEAD_BYTES];
    uint32_t t0 = p->timer_read(p->ctx);
    int rc = p->run_model(p->ctx, h->rx, h->out);
    uint32_t t1 = p->timer_read(p->ctx);
    put_u32(head, (uint32_t)rc);
    put_u64(head + 4, elapsed(h, t0, t1));
    put_u64(head + 12, p->npu_cycles ? p->npu_cycles(p->ctx) : 0u);
    frame_begin(h, MCD_MSG_INFER_RESULT, 0, seq, sizeof(head) + (rc == 0 ? out_bytes : 0u));
    frame_write(h, head, sizeof(head));
    if (rc == 0) frame_write(h, h->out, out_bytes);
    frame_end(h);
}

static void handle_bench(mcd_harness *h, uint16_t seq, uint32_t len)
{
    const mcd_harness_port *p = h->port;
    const uint32_t in_bytes = h->info->input_bytes;
    if (len != 4u && len != 4u + in_bytes) {
        send_error(h, MCD_MSG_BENCH, seq, MCD_ERR_BAD_LENGTH, "BENCH payload is u32 runs [+ input_bytes input]");
        return;
    }
    uint32_t runs = get_u32(h->rx);
    if (len == 4u) memset(h->rx, 0, in_bytes); /* no input given: zeros */
    else memmove(h->rx, h->rx + 4, in_bytes);
    uint64_t mn = UINT64_MAX, mx = 0, total = 0, npu = 0;
    int rc = 0;
    uint32_t done = 0;
    for (; done < runs; done++) {
        uint32_t t0 = p->timer_read(p->ctx);
        rc = p->run_model(p->ctx, h->rx, h->out);
        uint32_t t1 = p->timer_read(p->ctx);
        if (rc != 0) break;
        uint64_t dt = elapsed(h, t0, t1);
        mn = dt < mn ? dt : mn;
        mx = dt > mx ? dt : mx;
        total += dt;
        npu += p->npu_cycles ? p->npu_cycles(p->ctx) : 0u;
    }
    uint8_t out[40];
    put_u32(out, done);
    put_u32(out + 4, (uint32_t)rc);
    put_u64(out + 8, done ? mn : 0);
    put_u64(out + 16, mx);
    put_u64(out + 24, total);
    put_u64(out + 32, npu);
    mcd_harness_send(h, MCD_MSG_BENCH_RESULT, 0, seq, out, sizeof(out));
}

/* PROFILE: one run with every layer timed, and the stack high-water mark of the request. */
static void handle_profile(mcd_harness *h, uint16_t seq, uint32_t len)
{
    const mcd_harness_port *p = h->port;
    if (len != h->info->input_bytes) {
        send_error(h, MCD_MSG_PROFILE, seq, MCD_ERR_BAD_LENGTH, "PROFILE payload must be exactly input_bytes");
        return;
    }
    const uint32_t layers = (p->layer_count && p->profile) ? p->layer_count(p->ctx) : 0u;
    uint8_t head[MCD_PROFILE_HEAD_BYTES];
    if (p->stack_paint) p->stack_paint(p->ctx);
    if (layers) p->profile(p->ctx, 1);
    uint32_t t0 = p->timer_read(p->ctx);
    int rc = p->run_model(p->ctx, h->rx, h->out);
    uint32_t t1 = p->timer_read(p->ctx);
    if (layers) p->profile(p->ctx, 0);
    put_u32(head, (uint32_t)rc);
    put_u64(head + 4, elapsed(h, t0, t1));
    put_u64(head + 12, p->npu_cycles ? p->npu_cycles(p->ctx) : 0u);
    put_u32(head + 20, p->stack_used ? p->stack_used(p->ctx) : 0u);
    put_u32(head + 24, h->info->stack_size);
    put_u32(head + 28, layers);
    frame_begin(h, MCD_MSG_PROFILE_RESULT, 0, seq, MCD_PROFILE_HEAD_BYTES + layers * MCD_PROFILE_LAYER_BYTES);
    frame_write(h, head, sizeof(head));
    for (uint32_t i = 0; i < layers; i++) {
        uint8_t rec[MCD_PROFILE_LAYER_BYTES];
        put_u32(rec, p->layer_op(p->ctx, i));
        put_u64(rec + 4, elapsed(h, 0, p->layer_ticks(p->ctx, i)));
        frame_write(h, rec, sizeof(rec));
    }
    frame_end(h);
}

/* Read n bytes with the inter-byte timeout; 0 when the frame was cut short. */
static int read_n(mcd_harness *h, uint8_t *dst, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        int c = h->port->read(h->port->ctx, h->byte_timeout_ms);
        if (c < 0) return 0;
        dst[i] = (uint8_t)c;
    }
    return 1;
}

int mcd_harness_poll(mcd_harness *h, uint32_t timeout_ms)
{
    const mcd_harness_port *p = h->port;
    uint8_t hdr[10];
    /* resync: find A5 5A (an A5 run still counts, so "A5 A5 5A" is caught) */
    int c = p->read(p->ctx, timeout_ms);
    if (c != 0xA5) return 0;
    do c = p->read(p->ctx, h->byte_timeout_ms); while (c == 0xA5);
    if (c != 0x5A) return 0;
    if (!read_n(h, hdr, 10)) return 0;
    if (get_u16(hdr + 8) != (uint16_t)mcd_harness_crc32(0, hdr, 8)) return 0; /* noise: no trusted seq */
    uint8_t type = hdr[0];
    uint16_t seq = get_u16(hdr + 2);
    uint32_t len = get_u32(hdr + 4);
    if (len > h->rx_size) {
        send_error(h, type, seq, MCD_ERR_TOO_LARGE, "payload larger than max_payload");
        return 1;
    }
    uint8_t cb[4];
    if (!read_n(h, h->rx, len) || !read_n(h, cb, 4)) return 0;
    if (mcd_harness_crc32(mcd_harness_crc32(0, hdr, 10), h->rx, len) != get_u32(cb)) {
        send_error(h, type, seq, MCD_ERR_BAD_CRC, "request CRC mismatch");
        return 1;
    }
    switch (type) {
    case MCD_MSG_GET_HELLO:
        h->fresh = 0;
        send_hello(h, seq, 0);
        break;
    case MCD_MSG_INFER: handle_infer(h, seq, len); break;
    case MCD_MSG_BENCH: handle_bench(h, seq, len); break;
    case MCD_MSG_PROFILE: handle_profile(h, seq, len); break;
    default: send_error(h, type, seq, MCD_ERR_UNKNOWN_TYPE, "unknown request type"); break;
    }
    return 1;
}

void mcd_harness_serve(mcd_harness *h)
{
    mcd_harness_announce(h);
    for (;;) {
        (void)mcd_harness_poll(h, MCD_HARNESS_FOREVER);
    }
}
