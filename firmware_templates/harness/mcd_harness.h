/* mcudeploy harness library: the device side of mcudeploy's measurement protocol (docs/protocol.md),
 * for any firmware. It depends on nothing but the C library headers below: your application hands it
 * a port (write bytes, read a byte with a timeout, a timer, "run the model on this input") and a
 * description of the model, and `mcudeploy run --port ...` then measures that firmware like any
 * board: accuracy, bit-exactness against host TFLite Micro, latency, on-device BENCH and PROFILE.
 *
 * Frame (little-endian): A5 5A | type u8 | flags u8 | seq u16 | len u32 | hcrc u16 | payload | crc32 u32
 * hcrc = low 16 bits of CRC-32 over type..len; crc32 = CRC-32 (IEEE) over type..hcrc + payload.
 * Bytes outside frames are free text (your logs); the host keeps them in device.log.
 */
#ifndef MCD_HARNESS_H
#define MCD_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCD_HARNESS_PROTOCOL_VERSION 2u
#define MCD_HARNESS_FOREVER 0xFFFFFFFFu /* a read timeout that never expires */

enum mcd_msg_type {
    MCD_MSG_HELLO = 0x01,
    MCD_MSG_GET_HELLO = 0x02,
    MCD_MSG_INFER = 0x10,
    MCD_MSG_BENCH = 0x11,
    MCD_MSG_PROFILE = 0x12,
    MCD_MSG_INFER_RESULT = 0x90,
    MCD_MSG_BENCH_RESULT = 0x91,
    MCD_MSG_PROFILE_RESULT = 0x92,
    MCD_MSG_ERROR = 0x7F
};

enum mcd_error_code {
    MCD_ERR_BAD_CRC = 1,
    MCD_ERR_BAD_LENGTH = 2,
    MCD_ERR_UNKNOWN_TYPE = 3,
    MCD_ERR_INVOKE_FAILED = 4,
    MCD_ERR_TOO_LARGE = 5
};

#define MCD_FLAG_BOOT 0x01u  /* the unsolicited HELLO after reset */
#define MCD_FLAG_FRESH 0x02u /* on every frame since reset until the host sends GET_HELLO */

/* The porting layer. `ctx` is passed back to every function. Required: write, read, timer_read,
 * run_model. Optional ones may be NULL. */
typedef struct mcd_harness_port {
    void *ctx;
    /* Send bytes; may block until they are out. */
    void (*write)(void *ctx, const uint8_t *data, uint32_t len);
    /* One received byte (0..255), or -1 when none came within timeout_ms (MCD_HARNESS_FOREVER: wait). */
    int (*read)(void *ctx, uint32_t timeout_ms);
    /* A free-running 32-bit counter (cycle counter, SysTick extended by its interrupt, ...). */
    uint32_t (*timer_read)(void *ctx);
    /* Optional: end - start in the unit info.timer names (NULL: the wrapped difference of the counter). */
    uint64_t (*timer_elapsed)(void *ctx, uint32_t start, uint32_t end);
    /* Run the model: input_bytes in, output_bytes out, raw tensor bytes as the model defines them. 0 ok. */
    int (*run_model)(void *ctx, const uint8_t *input, uint8_t *output);
    /* Optional: NPU cycles of the last run_model (0 without an NPU). */
    uint64_t (*npu_cycles)(void *ctx);
    /* Optional per-layer profile (PROFILE request): profile(ctx, 1) before one run, (ctx, 0) after;
     * then layer_count layers, each the model's operator index and its elapsed timer ticks. */
    void (*profile)(void *ctx, int on);
    uint32_t (*layer_count)(void *ctx);
    uint32_t (*layer_op)(void *ctx, uint32_t layer);
    uint32_t (*layer_ticks)(void *ctx, uint32_t layer);
    /* Optional stack high-water mark for PROFILE: paint before the run, bytes used after it. */
    void (*stack_paint)(void *ctx);
    uint32_t (*stack_used)(void *ctx);
} mcd_harness_port;

/* What HELLO announces; the host refuses a device whose model hash or I/O is not the expected one. */
typedef struct mcd_harness_info {
    const char *model_sha256; /* hex sha256 of the .tflite (`mcudeploy inspect` prints it) */
    const char *runtime;      /* e.g. "tflm", "c" */
    const char *board;        /* the board name the host expects (`mcudeploy boards`) */
    const char *timer;        /* unit of the timings: "dwt-cycles", "systick-cycles", "icount-instructions" */
    const char *io;           /* mcudeploy.protocol.io_info(model), or "" to skip the host's I/O check */
    uint32_t clock_hz;        /* CPU clock */
    uint32_t arena_used;      /* tensor arena bytes in use (0: unknown) */
    uint32_t input_bytes;     /* bytes of one model input */
    uint32_t output_bytes;    /* bytes of one model output */
    uint32_t stack_size;      /* bytes reserved for the stack (0: unknown) */
    uint8_t npu;              /* 1 when an NPU runs part of the model */
} mcd_harness_info;

/* The request buffer must hold a BENCH (u32 runs + one input) and at least 64 bytes. */
#define MCD_HARNESS_RX_BYTES(input_bytes) ((input_bytes) + 4u > 64u ? (input_bytes) + 4u : 64u)

typedef struct mcd_harness {
    const mcd_harness_port *port;
    const mcd_harness_info *info;
    uint8_t *rx;              /* MCD_HARNESS_RX_BYTES(info->input_bytes) bytes, yours */
    uint32_t rx_size;
    uint8_t *out;             /* info->output_bytes bytes, yours */
    uint32_t byte_timeout_ms; /* inside a frame: a gap this long drops the frame (default 200 ms) */
    uint8_t fresh;
    uint32_t tx_crc;
} mcd_harness;

/* 0 ok; -1 when a required port function is missing or a buffer is too small. */
int mcd_harness_init(mcd_harness *h, const mcd_harness_port *port, const mcd_harness_info *info, uint8_t *rx,
                     uint32_t rx_size, uint8_t *out);
/* HELLO with flag BOOT: call once after reset (mcd_harness_serve does). */
void mcd_harness_announce(mcd_harness *h);
/* Wait up to timeout_ms for one request and answer it: 1 a request was handled, 0 none came. For
 * applications with their own main loop; noise and broken frames are skipped. */
int mcd_harness_poll(mcd_harness *h, uint32_t timeout_ms);
/* Announce, then serve requests forever. */
void mcd_harness_serve(mcd_harness *h);

/* Building blocks for applications that add their own messages. */
uint32_t mcd_harness_crc32(uint32_t crc, const uint8_t *data, size_t len); /* start with 0 */
void mcd_harness_send(mcd_harness *h, uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *payload,
                      uint32_t len);

#ifdef __cplusplus
}
#endif

#endif /* MCD_HARNESS_H */
