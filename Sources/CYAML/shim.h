#ifndef DGW_CYAML_SHIM_H
#define DGW_CYAML_SHIM_H
#include <yaml.h>
#endif
