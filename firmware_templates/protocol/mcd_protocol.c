/* The harness library's port for generated firmware: bytes through the platform UART, time from the
 * platform timer, the model through mcd_runtime.h, identity from mcd_board.h and mcd_model_meta.h.
 * One port for every runtime, so the host cannot tell them apart except by HELLO. */
#include "mcd_protocol.h"

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

static uint8_t mcd_rx[MCD_HARNESS_RX_BYTES(MCD_INPUT_BYTES)] __attribute__((aligned(16)));
static uint8_t mcd_out[(MCD_OUTPUT_BYTES) > 0 ? (MCD_OUTPUT_BYTES) : 1] __attribute__((aligned(16)));

static void port_write(void *ctx, const uint8_t *data, uint32_t len)
{
    (void)ctx;
    for (uint32_t i = 0; i < len; i++) mcd_uart_putc(data[i]);
}

/* Timeouts count raw timer ticks, which advance at the CPU clock (DWT, SysTick, host ns). */
static int port_read(void *ctx, uint32_t timeout_ms)
{
    (void)ctx;
    if (timeout_ms == MCD_HARNESS_FOREVER) return mcd_uart_getc();
    const uint32_t per_ms = mcd_cpu_clock_hz() / 1000u;
    const uint32_t limit = timeout_ms < 0xFFFFFFFFu / per_ms ? timeout_ms * per_ms : 0xFFFFFFFFu;
    const uint32_t t0 = mcd_timer_read();
    for (;;) {
        int c = mcd_uart_try_getc();
        if (c >= 0) return c;
        if ((uint32_t)(mcd_timer_read() - t0) >= limit) return -1;
    }
}

static uint32_t port_timer_read(void *ctx) { (void)ctx; return mcd_timer_read(); }
static uint64_t port_timer_elapsed(void *ctx, uint32_t start, uint32_t end) { (void)ctx; return mcd_timer_elapsed(start, end); }
static int port_run(void *ctx, const uint8_t *input, uint8_t *output) { (void)ctx; return mcd_runtime_invoke(input, output); }
static uint64_t port_npu_cycles(void *ctx) { (void)ctx; return mcd_runtime_npu_cycles(); }
static void port_profile(void *ctx, int on) { (void)ctx; mcd_runtime_profile_clock(on ? mcd_timer_read : 0); }
static uint32_t port_layer_count(void *ctx) { (void)ctx; return mcd_runtime_layer_count(); }
static uint32_t port_layer_op(void *ctx, uint32_t layer) { (void)ctx; return mcd_runtime_layer_op(layer); }
static uint32_t port_layer_ticks(void *ctx, uint32_t layer) { (void)ctx; return mcd_runtime_layer_ticks(layer); }
static void port_stack_paint(void *ctx) { (void)ctx; mcd_stack_paint(); }
static uint32_t port_stack_used(void *ctx) { (void)ctx; return mcd_stack_used(); }

void mcd_protocol_serve(void)
{
    static const mcd_harness_port port = {
        .ctx = 0,
        .write = port_write,
        .read = port_read,
        .timer_read = port_timer_read,
        .timer_elapsed = port_timer_elapsed,
        .run_model = port_run,
        .npu_cycles = port_npu_cycles,
        .profile = port_profile,
        .layer_count = port_layer_count,
        .layer_op = port_layer_op,
        .layer_ticks = port_layer_ticks,
        .stack_paint = port_stack_paint,
        .stack_used = port_stack_used,
    };
    static mcd_harness_info info;
    static mcd_harness h;
    info.model_sha256 = MCD_MODEL_SHA256;
    info.runtime = mcd_runtime_name();
    info.board = MCD_BOARD_NAME;
    info.timer = mcd_timer_name();
    info.io = MCD_IO_INFO;
    info.clock_hz = mcd_cpu_clock_hz();
    info.arena_used = mcd_runtime_arena_used();
    info.input_bytes = MCD_INPUT_BYTES;
    info.output_bytes = MCD_OUTPUT_BYTES;
    info.stack_size = mcd_stack_size();
    info.npu = MCD_HAS_NPU;
    if (mcd_harness_init(&h, &port, &info, mcd_rx, sizeof mcd_rx, mcd_out) != 0) {
        return;
    }
    mcd_harness_serve(&h);
}
