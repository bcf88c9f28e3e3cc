/* "Your own" application: it owns start-up, clocks, UART and timer, runs a model, and offers a
 * measurement mode through the mcudeploy harness library (mcd_harness.h) instead of its usual job.
 * The model here is mcudeploy's C runtime (mcd_runtime_invoke); a TFLM app calls its interpreter. */
#include <stdint.h>

#include "board.h"
#include "mcd_harness.h"
#include "mcd_harness_model.h" /* written by `mcudeploy harness-lib --model` */
#include "mcd_runtime.h"      /* the model: here mcudeploy's C runtime */

static void port_write(void *ctx, const uint8_t *data, uint32_t len)
{
    (void)ctx;
    for (uint32_t i = 0; i < len; i++) board_uart_write(data[i]);
}

static int port_read(void *ctx, uint32_t timeout_ms)
{
    (void)ctx;
    const uint32_t per_ms = board_clock_hz() / 1000u;
    const uint32_t t0 = board_ticks();
    for (;;) {
        int c = board_uart_read_nonblocking();
        if (c >= 0) return c;
        if (timeout_ms != MCD_HARNESS_FOREVER && (board_ticks() - t0) / per_ms >= timeout_ms) return -1;
    }
}

static uint32_t port_timer(void *ctx)
{
    (void)ctx;
    return board_ticks();
}

static int port_run(void *ctx, const uint8_t *input, uint8_t *output)
{
    (void)ctx;
    return mcd_runtime_invoke(input, output);
}

static const mcd_harness_port port = {
    .write = port_write, .read = port_read, .timer_read = port_timer, .run_model = port_run};
static mcd_harness_info info = {
    .model_sha256 = MCD_HARNESS_MODEL_SHA256,
    .runtime = "c",
    .board = APP_BOARD,
    .timer = "systick-cycles",
    .io = MCD_HARNESS_MODEL_IO,
    .input_bytes = MCD_HARNESS_MODEL_INPUT_BYTES,
    .output_bytes = MCD_HARNESS_MODEL_OUTPUT_BYTES,
};
static uint8_t rx[MCD_HARNESS_RX_BYTES(MCD_HARNESS_MODEL_INPUT_BYTES)] __attribute__((aligned(16)));
static uint8_t out[MCD_HARNESS_MODEL_OUTPUT_BYTES] __attribute__((aligned(16)));
static mcd_harness harness;

int main(void)
{
    board_init();
    board_log("\r\nharness_app: my own firmware on " APP_BOARD "\r\n");
    if (mcd_runtime_init() != 0) {
        board_log("harness_app: model init failed\r\n");
        return 1;
    }
    info.clock_hz = board_clock_hz();
    info.arena_used = mcd_runtime_arena_used();
    if (mcd_harness_init(&harness, &port, &info, rx, sizeof rx, out) != 0) {
        board_log("harness_app: harness init failed\r\n");
        return 1;
    }
    mcd_harness_serve(&harness); /* measurement mode: never returns */
    return 0;
}
