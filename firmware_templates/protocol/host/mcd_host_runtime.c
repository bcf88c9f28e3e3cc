/* Host test runtime: a small int8 layer with fixed weights, so replies depend on every input byte.
 * Reference in Python: mcudeploy.device.protocol_host.toy_layer (same arithmetic, same rounding).
 *   out[i] = clamp((sum_j in[j] * w(i, j) + 8) >> 4, -128, 127),  w(i, j) = ((i * 7 + j * 3) % 11) - 5
 */
#include <stdint.h>

#include "mcd_model_meta.h"
#include "mcd_runtime.h"

static uint32_t (*prof_clock)(void);
static uint32_t prof_ticks;

int mcd_runtime_init(void) { return 0; }

int mcd_runtime_invoke(const void *input, void *output)
{
    const uint32_t t0 = prof_clock ? prof_clock() : 0u;
    const int8_t *in = (const int8_t *)input;
    int8_t *out = (int8_t *)output;
    for (int i = 0; i < (int)(MCD_OUTPUT_BYTES); i++) {
        int32_t acc = 0;
        for (int j = 0; j < (int)(MCD_INPUT_BYTES); j++) acc += (int32_t)in[j] * (((i * 7 + j * 3) % 11) - 5);
        acc = (acc + 8) >> 4;
        out[i] = (int8_t)(acc < -128 ? -128 : acc > 127 ? 127 : acc);
    }
    if (prof_clock) prof_ticks = prof_clock() - t0;
    return 0;
}

/* one layer: the whole toy */
uint32_t mcd_runtime_layer_count(void) { return 1; }
uint32_t mcd_runtime_layer_op(uint32_t layer) { return layer; }
void mcd_runtime_profile_clock(uint32_t (*clock)(void)) { prof_clock = clock; }
uint32_t mcd_runtime_layer_ticks(uint32_t layer) { return layer == 0 ? prof_ticks : 0u; }

uint32_t mcd_runtime_arena_used(void) { return 0; }
const char *mcd_runtime_name(void) { return "host-toy"; }
uint64_t mcd_runtime_npu_cycles(void) { return 0; }
