/* While the editor entry points are being written in the library, the CLI references
   them weakly, so `make` links against a library without them; the subcommands that
   need them check at run time (CLI_HAVE) and say what is missing. */
#ifndef KNE_CLI_COMPAT_H
#define KNE_CLI_COMPAT_H
#include "kne.h"
#if defined(__GNUC__)
#pragma weak kne_edit_default_params
#pragma weak kne_editor_new
#pragma weak kne_apply
#pragma weak kne_editor_revert
#pragma weak kne_editor_n_applied
#pragma weak kne_editor_free
#define CLI_HAVE(fn) ((fn) != NULL)
#else
#define CLI_HAVE(fn) 1
#endif
#endif
