/* Host test runtime: a small int8 layer with fixed weights, so replies depend on every input byte.
 * Reference in Python: mcudeploy.protocol_host.toy_layer (same arithmetic, same rounding).
 *   out[i] = clamp((sum_j in[j] * w(i, j) + 8) >> 4, -128, 127),  w(i, j) = ((i * 7 + j * 3) % 11) - 5
 */
#include <stdint.h>

#include "mcd_model_meta.h"
#include "mcd_runtime.h"

int mcd_runtime_init(void) { return 0; }

int mcd_runtime_invoke(const void *input, void *output)
{
    const int8_t *in = (const int8_t *)input;
    int8_t *out = (int8_t *)output;
    for (int i = 0; i < (int)(MCD_OUTPUT_BYTES); i++) {
        int32_t acc = 0;
        for (int j = 0; j < (int)(MCD_INPUT_BYTES); j++) acc += (int32_t)in[j] * (((i * 7 + j * 3) % 11) - 5);
        acc = (acc + 8) >> 4;
        out[i] = (int8_t)(acc < -128 ? -128 : acc > 127 ? 127 : acc);
    }
    return 0;
}

uint32_t mcd_runtime_arena_used(void) { return 0; }
const char *mcd_runtime_name(void) { return "host-toy"; }
uint64_t mcd_runtime_npu_cycles(void) { return 0; }
