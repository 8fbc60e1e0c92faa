#include "ctl/ctl.h"

int main(int argc, char** argv) { return coap_edge::ctl::realMain(argc, argv); }
