/* Host driver for the generated C runtime: raw inputs on stdin (back to back), raw outputs on stdout.
 * Used by mcudeploy to compare the runtime with host TFLM without a target. */
#include <stdio.h>
#include <stdlib.h>

#include "mcd_runtime.h"
#include "mcd_runtime_c.h"

int main(void)
{
    static unsigned char in[MCD_C_INPUT_BYTES + 1];
    static unsigned char out[MCD_C_OUTPUT_BYTES + 1];
    if (mcd_runtime_init() != 0) return 2;
    while (fread(in, 1, MCD_C_INPUT_BYTES, stdin) == MCD_C_INPUT_BYTES) {
        if (mcd_runtime_invoke(in, out) != 0) return 3;
        if (fwrite(out, 1, MCD_C_OUTPUT_BYTES, stdout) != MCD_C_OUTPUT_BYTES) return 4;
    }
    return 0;
}
