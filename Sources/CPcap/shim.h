#ifndef DGW_CPCAP_SHIM_H
#define DGW_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
