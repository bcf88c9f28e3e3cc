/* mcudeploy device protocol for generated firmware (see docs/protocol.md): the harness library
 * (mcd_harness.h, the same code `mcudeploy harness-lib` gives your own firmware) ported onto
 * mcd_platform.h and mcd_runtime.h. */
#ifndef MCD_PROTOCOL_H
#define MCD_PROTOCOL_H

#include "mcd_harness.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MCD_PROTOCOL_VERSION MCD_HARNESS_PROTOCOL_VERSION

/* Announce HELLO (flag BOOT), then serve GET_HELLO / INFER / BENCH / PROFILE forever. */
void mcd_protocol_serve(void);

#ifdef __cplusplus
}
#endif

#endif /* MCD_PROTOCOL_H */
