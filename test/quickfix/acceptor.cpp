// A small QuickFIX acceptor used by tether's FIX interoperability tests and demo.
//
//   qf-acceptor <config file> [port]
//
// Prints one line per event on stdout (flushed), so a test can follow the session:
//   READY <port>            the acceptor is listening
//   LOGON <session>         a session logged on
//   LOGOUT <session>        a session logged out (or its connection ended)
//   IN <msgtype> <message>  an admin/app message received (SOH shown as '|')
//   OUT <msgtype> <message> an admin/app message sent
// Stops cleanly when stdin reaches EOF (or on SIGTERM/SIGINT).
#include <quickfix/Application.h>
#include <quickfix/FileLog.h>
#include <quickfix/MessageStore.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketAcceptor.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>

// QuickFIX before 1.15 declares callbacks with dynamic exception specifications, later ones with EXCEPT().
#ifdef EXCEPT
#define QF_THROWS(...) EXCEPT(__VA_ARGS__)
#else
#define QF_THROWS(...) throw(__VA_ARGS__)
#endif

namespace {

std::mutex outMutex;

void emit(const std::string& line) {
  std::lock_guard<std::mutex> lock(outMutex);
  std::cout << line << std::endl;
}

std::string printable(const FIX::Message& message) {
  std::string s = message.toString();
  for (char& c : s) {
    if (c == '\x01') c = '|';
  }
  return s;
}

std::string msgType(const FIX::Message& message) {
  FIX::MsgType type;
  if (message.getHeader().getFieldIfSet(type)) return type.getValue();
  return "?";
}

class EchoApplication : public FIX::Application {
 public:
  void onCreate(const FIX::SessionID&) override {}
  void onLogon(const FIX::SessionID& id) override { emit("LOGON " + id.toString()); }
  void onLogout(const FIX::SessionID& id) override { emit("LOGOUT " + id.toString()); }
  void toAdmin(FIX::Message& message, const FIX::SessionID&) override {
    emit("OUT " + msgType(message) + " " + printable(message));
  }
  void toApp(FIX::Message& message, const FIX::SessionID&) QF_THROWS(FIX::DoNotSend) override {
    emit("OUT " + msgType(message) + " " + printable(message));
  }
  void fromAdmin(const FIX::Message& message, const FIX::SessionID&)
      QF_THROWS(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::RejectLogon) override {
    emit("IN " + msgType(message) + " " + printable(message));
  }
  void fromApp(const FIX::Message& message, const FIX::SessionID&)
      QF_THROWS(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::UnsupportedMessageType) override {
    emit("IN " + msgType(message) + " " + printable(message));
  }
};

volatile std::sig_atomic_t stopRequested = 0;
void onSignal(int) { stopRequested = 1; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: qf-acceptor <config file> [port]" << std::endl;
    return 2;
  }
  try {
    // read the file; a port given on the command line replaces every SocketAcceptPort line
    std::ifstream file(argv[1]);
    if (!file) throw std::runtime_error(std::string("cannot read ") + argv[1]);
    std::stringstream text;
    std::string line;
    while (std::getline(file, line)) {
      if (argc >= 3 && line.rfind("SocketAcceptPort=", 0) == 0) line = std::string("SocketAcceptPort=") + argv[2];
      text << line << "\n";
    }
    FIX::SessionSettings settings(text);
    const std::string port = settings.get().getString("SocketAcceptPort");
    EchoApplication application;
    FIX::MemoryStoreFactory storeFactory;
    FIX::ScreenLogFactory logFactory(false, false, false);
    FIX::SocketAcceptor acceptor(application, storeFactory, settings, logFactory);
    std::signal(SIGTERM, onSignal);
    std::signal(SIGINT, onSignal);
    acceptor.start();
    emit("READY " + port);
    // run until stdin closes or a signal arrives
    while (!stopRequested && std::getline(std::cin, line)) {
    }
    acceptor.stop();
    emit("STOPPED");
  } catch (const std::exception& e) {
    std::cerr << "qf-acceptor: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
