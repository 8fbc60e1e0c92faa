#include "daemon/agent.h"

int main(int argc, char** argv) { return coap_edge::daemon::realMain(argc, argv); }
