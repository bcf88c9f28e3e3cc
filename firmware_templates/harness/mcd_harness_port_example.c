/* An example port of the mcudeploy harness library onto functions your firmware already has: a UART
 * (uart_write_byte, uart_read_byte_nonblocking), a millisecond tick and a cycle counter, and your
 * inference call. Rename them to yours; delete what you do not need. Compiles as C99. */
#include <stdint.h>

#include "mcd_harness.h"

/* -- yours: provided elsewhere in your application ------------------------------------------ */
extern void uart_write_byte(uint8_t byte);
extern int uart_read_byte_nonblocking(void); /* -1 when nothing is waiting */
extern uint32_t millis(void);                /* a millisecond tick */
extern uint32_t cycle_counter(void);         /* e.g. DWT->CYCCNT */
extern int my_model_run(const uint8_t *input, uint8_t *output); /* 0 ok */
#define MY_MODEL_SHA256 "put the sha256 of your .tflite here (mcudeploy inspect prints it)"
#define MY_MODEL_INPUT_BYTES 64u
#define MY_MODEL_OUTPUT_BYTES 10u
#define MY_CPU_CLOCK_HZ 168000000u

/* -- the port ---------------------------------------------------------------------------------- */
static void port_write(void *ctx, const uint8_t *data, uint32_t len)
{
    (void)ctx;
    for (uint32_t i = 0; i < len; i++) uart_write_byte(data[i]);
}

static int port_read(void *ctx, uint32_t timeout_ms)
{
    (void)ctx;
    const uint32_t t0 = millis();
    for (;;) {
        int c = uart_read_byte_nonblocking();
        if (c >= 0) return c;
        if (timeout_ms != MCD_HARNESS_FOREVER && (uint32_t)(millis() - t0) >= timeout_ms) return -1;
    }
}

static uint32_t port_timer(void *ctx)
{
    (void)ctx;
    return cycle_counter();
}

static int port_run(void *ctx, const uint8_t *input, uint8_t *output)
{
    (void)ctx;
    return my_model_run(input, output);
}

void start_measurement_mode(void)
{
    static const mcd_harness_port port = {
        .write = port_write, .read = port_read, .timer_read = port_timer, .run_model = port_run};
    static const mcd_harness_info info = {
        .model_sha256 = MY_MODEL_SHA256,
        .runtime = "my-app",
        .board = "nucleo-h743zi2",
        .timer = "dwt-cycles",
        .io = "",
        .clock_hz = MY_CPU_CLOCK_HZ,
        .input_bytes = MY_MODEL_INPUT_BYTES,
        .output_bytes = MY_MODEL_OUTPUT_BYTES,
    };
    static uint8_t rx[MCD_HARNESS_RX_BYTES(MY_MODEL_INPUT_BYTES)];
    static uint8_t out[MY_MODEL_OUTPUT_BYTES];
    static mcd_harness h;
    if (mcd_harness_init(&h, &port, &info, rx, sizeof rx, out) == 0) {
        mcd_harness_serve(&h); /* never returns */
    }
}
