/* mcudeploy device protocol: the device side of mcudeploy/protocol.py (docs/protocol.md).
 * One implementation for every runtime: it only talks to mcd_platform.h, mcd_runtime.h and the
 * generated mcd_model_meta.h, so the host cannot tell the runtimes apart except by HELLO.
 */
#include "mcd_protocol.h"

#include <string.h>

#include "mcd_board.h"
#include "mcd_model_meta.h"
#include "mcd_platform.h"
#include "mcd_runtime.h"

#ifndef MCD_BOARD_NAME
#define MCD_BOARD_NAME "unknown"
#endif
#ifndef MCD_IO_INFO /* canonical I/O string from mcudeploy.protocol.io_info(model) */
#define MCD_IO_INFO ""
#endif
#ifndef MCD_HAS_NPU
#define MCD_HAS_NPU 0
#endif

/* A request holds at most a BENCH (u32 runs + one input); never smaller than 64 bytes. */
#ifndef MCD_PROTOCOL_MAX_PAYLOAD
#define MCD_PROTOCOL_MAX_PAYLOAD ((MCD_INPUT_BYTES) + 4u > 64u ? (MCD_INPUT_BYTES) + 4u : 64u)
#endif

#define MCD_HEADER_BYTES 12u
#define MCD_INFER_HEAD_BYTES 20u /* i32 status, u64 cpu elapsed, u64 npu cycles */
#define MCD_PROFILE_HEAD_BYTES 32u /* + u32 stack used, u32 stack size, u32 layers */
#define MCD_PROFILE_LAYER_BYTES 12u /* u32 op index, u64 elapsed */

static uint8_t mcd_rx[MCD_PROTOCOL_MAX_PAYLOAD] __attribute__((aligned(16)));
static uint8_t mcd_out[(MCD_OUTPUT_BYTES) > 0 ? (MCD_OUTPUT_BYTES) : 1] __attribute__((aligned(16)));
/* Set on every reply until the host re-reads HELLO: a reset is noticed even if the boot HELLO is lost. */
static uint8_t mcd_fresh = MCD_FLAG_FRESH;
static char mcd_hello[384 + sizeof(MCD_IO_INFO) + sizeof(MCD_MODEL_SHA256)];

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320), nibble table: 64 bytes of table, ~2x faster than bitwise. */
static const uint32_t mcd_crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t mcd_crc32_update(uint32_t crc, const uint8_t *data, size_t len)
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

static void write_bytes(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) mcd_uart_putc(p[i]);
}

/* A frame written as it goes: header, then payload pieces, then the CRC, so replies of any length
 * (outputs, per-layer profiles) need no buffer. The pieces must add up to the announced length. */
static uint32_t tx_crc;

static void frame_begin(uint8_t type, uint8_t flags, uint16_t seq, uint32_t len)
{
    uint8_t h[MCD_HEADER_BYTES];
    h[0] = 0xA5u;
    h[1] = 0x5Au;
    h[2] = type;
    h[3] = (uint8_t)(flags | mcd_fresh);
    put_u16(h + 4, seq);
    put_u32(h + 6, len);
    put_u16(h + 10, (uint16_t)mcd_crc32_update(0, h + 2, 8));
    tx_crc = mcd_crc32_update(0, h + 2, 10);
    write_bytes(h, MCD_HEADER_BYTES);
}

static void frame_write(const uint8_t *p, uint32_t n)
{
    tx_crc = mcd_crc32_update(tx_crc, p, n);
    write_bytes(p, n);
}

static void frame_end(void)
{
    uint8_t c[4];
    put_u32(c, tx_crc);
    write_bytes(c, 4);
}

/* A frame whose payload is head + body, so results are sent without copying the output. */
static void send_parts(uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *head, uint32_t head_len,
                       const uint8_t *body, uint32_t body_len)
{
    frame_begin(type, flags, seq, head_len + body_len);
    frame_write(head, head_len);
    frame_write(body, body_len);
    frame_end();
}

void mcd_protocol_send(uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *payload, uint32_t len)
{
    send_parts(type, flags, seq, payload, len, payload, 0);
}

static void send_error(uint8_t req_type, uint16_t seq, uint8_t code, const char *msg)
{
    uint8_t head[2] = {req_type, code};
    send_parts(MCD_MSG_ERROR, 0, seq, head, 2, (const uint8_t *)msg, (uint32_t)strlen(msg));
}

/* -- HELLO: key=value lines, built without printf (newlib-nano printf is large and slow) -- */
static size_t hello_len;

static void hello_str(const char *s)
{
    size_t n = strlen(s);
    if (hello_len + n >= sizeof(mcd_hello)) n = sizeof(mcd_hello) - 1 - hello_len;
    memcpy(mcd_hello + hello_len, s, n);
    hello_len += n;
}

static void hello_u64(uint64_t v)
{
    char d[21];
    int i = 20;
    d[i] = '\0';
    do {
        d[--i] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v && i > 0);
    hello_str(d + i);
}

static void hello_kv(const char *k, const char *v) { hello_str(k); hello_str("="); hello_str(v); hello_str("\n"); }
static void hello_kn(const char *k, uint64_t v) { hello_str(k); hello_str("="); hello_u64(v); hello_str("\n"); }

void mcd_protocol_send_hello(uint16_t seq, uint8_t flags)
{
    hello_len = 0;
    hello_kn("proto", MCD_PROTOCOL_VERSION);
    hello_kv("sha256", MCD_MODEL_SHA256);
    hello_kv("runtime", mcd_runtime_name());
    hello_kv("board", MCD_BOARD_NAME);
    hello_kn("clock_hz", mcd_cpu_clock_hz());
    hello_kn("arena_used", mcd_runtime_arena_used());
    hello_kn("input_bytes", (uint64_t)(MCD_INPUT_BYTES));
    hello_kn("output_bytes", (uint64_t)(MCD_OUTPUT_BYTES));
    hello_kn("max_payload", (uint64_t)(MCD_PROTOCOL_MAX_PAYLOAD));
    hello_kv("timer", mcd_timer_name());
    hello_kn("npu", MCD_HAS_NPU);
    hello_kn("layers", mcd_runtime_layer_count());
    hello_kn("stack_size", mcd_stack_size());
    hello_kv("io", MCD_IO_INFO);
    mcd_protocol_send(MCD_MSG_HELLO, flags, seq, (const uint8_t *)mcd_hello, (uint32_t)hello_len);
}

static void handle_infer(uint16_t seq, uint32_t len)
{
    if (len != (uint32_t)(MCD_INPUT_BYTES)) {
        send_error(MCD_MSG_INFER, seq, MCD_ERR_BAD_LENGTH, "INFER payload must be exactly MCD_INPUT_BYTES");
        return;
    }
    uint8_t head[MCD_INFER_HEAD_BYTES];
    uint32_t t0 = mcd_timer_read();
    int rc = mcd_runtime_invoke(mcd_rx, mcd_out);
    uint32_t t1 = mcd_timer_read();
    put_u32(head, (uint32_t)rc);
    put_u64(head + 4, mcd_timer_elapsed(t0, t1));
    put_u64(head + 12, mcd_runtime_npu_cycles());
    send_parts(MCD_MSG_INFER_RESULT, 0, seq, head, sizeof(head), mcd_out, rc == 0 ? (MCD_OUTPUT_BYTES) : 0);
}

static void handle_bench(uint16_t seq, uint32_t len)
{
    if (len != 4u && len != 4u + (uint32_t)(MCD_INPUT_BYTES)) {
        send_error(MCD_MSG_BENCH, seq, MCD_ERR_BAD_LENGTH, "BENCH payload is u32 runs [+ MCD_INPUT_BYTES input]");
        return;
    }
    uint32_t runs = get_u32(mcd_rx);
    if (len == 4u) memset(mcd_rx, 0, MCD_INPUT_BYTES); /* no input given: zeros */
    else memmove(mcd_rx, mcd_rx + 4, MCD_INPUT_BYTES);
    uint64_t mn = UINT64_MAX, mx = 0, total = 0, npu = 0;
    int rc = 0;
    uint32_t done = 0;
    for (; done < runs; done++) {
        uint32_t t0 = mcd_timer_read();
        rc = mcd_runtime_invoke(mcd_rx, mcd_out);
        uint32_t t1 = mcd_timer_read();
        if (rc != 0) break;
        uint64_t dt = mcd_timer_elapsed(t0, t1);
        mn = dt < mn ? dt : mn;
        mx = dt > mx ? dt : mx;
        total += dt;
        npu += mcd_runtime_npu_cycles();
    }
    uint8_t out[40];
    put_u32(out, done);
    put_u32(out + 4, (uint32_t)rc);
    put_u64(out + 8, done ? mn : 0);
    put_u64(out + 16, mx);
    put_u64(out + 24, total);
    put_u64(out + 32, npu);
    mcd_protocol_send(MCD_MSG_BENCH_RESULT, 0, seq, out, sizeof(out));
}

/* PROFILE: one invoke with every layer timed, and the stack high-water mark of the request. */
static void handle_profile(uint16_t seq, uint32_t len)
{
    if (len != (uint32_t)(MCD_INPUT_BYTES)) {
        send_error(MCD_MSG_PROFILE, seq, MCD_ERR_BAD_LENGTH, "PROFILE payload must be exactly MCD_INPUT_BYTES");
        return;
    }
    const uint32_t layers = mcd_runtime_layer_count();
    uint8_t head[MCD_PROFILE_HEAD_BYTES];
    mcd_stack_paint();
    mcd_runtime_profile_clock(mcd_timer_read);
    uint32_t t0 = mcd_timer_read();
    int rc = mcd_runtime_invoke(mcd_rx, mcd_out);
    uint32_t t1 = mcd_timer_read();
    mcd_runtime_profile_clock(0);
    put_u32(head, (uint32_t)rc);
    put_u64(head + 4, mcd_timer_elapsed(t0, t1));
    put_u64(head + 12, mcd_runtime_npu_cycles());
    put_u32(head + 20, mcd_stack_used());
    put_u32(head + 24, mcd_stack_size());
    put_u32(head + 28, layers);
    frame_begin(MCD_MSG_PROFILE_RESULT, 0, seq, MCD_PROFILE_HEAD_BYTES + layers * MCD_PROFILE_LAYER_BYTES);
    frame_write(head, sizeof(head));
    for (uint32_t i = 0; i < layers; i++) {
        uint8_t rec[MCD_PROFILE_LAYER_BYTES];
        put_u32(rec, mcd_runtime_layer_op(i));
        put_u64(rec + 4, mcd_timer_elapsed(0, mcd_runtime_layer_ticks(i)));
        frame_write(rec, sizeof(rec));
    }
    frame_end();
}

static uint8_t getc8(void) { return (uint8_t)mcd_uart_getc(); }

void mcd_protocol_serve(void)
{
    mcd_protocol_send_hello(0, MCD_FLAG_BOOT);
    uint8_t h[10];
    for (;;) {
        /* resync: find A5 5A (an A5 run still counts, so "A5 A5 5A" is caught) */
        uint8_t c = getc8();
        if (c != 0xA5u) continue;
        do c = getc8(); while (c == 0xA5u);
        if (c != 0x5Au) continue;
        for (int i = 0; i < 10; i++) h[i] = getc8();
        if (get_u16(h + 8) != (uint16_t)mcd_crc32_update(0, h, 8)) continue; /* noise: no trusted seq */
        uint8_t type = h[0];
        uint16_t seq = get_u16(h + 2);
        uint32_t len = get_u32(h + 4);
        if (len > (uint32_t)(MCD_PROTOCOL_MAX_PAYLOAD)) {
            send_error(type, seq, MCD_ERR_TOO_LARGE, "payload larger than max_payload");
            continue;
        }
        for (uint32_t i = 0; i < len; i++) mcd_rx[i] = getc8();
        uint8_t cb[4];
        for (int i = 0; i < 4; i++) cb[i] = getc8();
        uint32_t crc = mcd_crc32_update(mcd_crc32_update(0, h, 10), mcd_rx, len);
        if (crc != get_u32(cb)) {
            send_error(type, seq, MCD_ERR_BAD_CRC, "request CRC mismatch");
            continue;
        }
        switch (type) {
        case MCD_MSG_GET_HELLO:
            mcd_fresh = 0;
            mcd_protocol_send_hello(seq, 0);
            break;
        case MCD_MSG_INFER: handle_infer(seq, len); break;
        case MCD_MSG_BENCH: handle_bench(seq, len); break;
        case MCD_MSG_PROFILE: handle_profile(seq, len); break;
        default: send_error(type, seq, MCD_ERR_UNKNOWN_TYPE, "unknown request type"); break;
        }
    }
}
