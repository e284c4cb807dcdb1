/* What this build of remap_ops.so holds, readable in the file without loading it: remap/jpeg_crop.py
 * loads a library built without the torch ops (TORCH_OPS=0, or torch older than 2.4) with ctypes even
 * where remap's Python side cannot use torch ops, because such a library needs no torch at all.
 */
#ifndef REMAP_TORCH_OPS
#error "compile with -DREMAP_TORCH_OPS=0 or 1 (remap/Makefile)"
#endif
#define REMAP_STR2(x) #x
#define REMAP_STR(x) REMAP_STR2(x)

__attribute__((used)) const char remap_build_info[] = "remap-build: torch-ops=" REMAP_STR(REMAP_TORCH_OPS) ";";
