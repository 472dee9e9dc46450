"""The example client as an ``fsm`` system under test.

``fsm replay suite.json --adapter chat_adapter:ExampleClientAdapter`` (run from this
folder) drives the client as shipped, with its bug; ``FixedExampleClientAdapter``
drives the fixed one. Each step makes the fake world do what the suite says,
refusing (:class:`~fsm.testing.adapters.StepRefused`) a step that cannot happen
in it, by the rules of :class:`~fsm.testing.adapters.SystemUnderTest`.
"""

from __future__ import annotations

from chat_client import ChatViewModel, WebSocketManager, World

from fsm.analysis.system import Outcome, Stimulus
from fsm.model.design import Design, Environment
from fsm.testing.adapters import StepRefused
from fsm.testing.observation import MessageObservation, Observation

__all__ = ["ExampleClientAdapter", "FixedExampleClientAdapter"]


class ExampleClientAdapter:
    """The client as shipped: pending-retry entries removed when the send returns."""

    name = "example-client"
    clear_on_ws_send = True

    def reset(self, design: Design, environment: Environment, messages: int) -> Observation:
        if environment.name != "ios-suspend":
            raise StepRefused(f"this example's world has no {environment.name!r} environment")
        self.world = World()
        self.ws = WebSocketManager(self.world)
        self.vm = ChatViewModel(self.ws, clear_on_ws_send=self.clear_on_ws_send)
        self.count = messages
        return self.observation()

    def observation(self) -> Observation:
        shown = []
        for i in range(self.count):
            if i < len(self.vm.messages):
                m = self.vm.messages[i]
                copies = min(self.world.server.copies.get(m.id, 0), 2)
                shown.append(
                    MessageObservation(
                        state=m.state, held=m.id in self.vm.pending_retry, server=copies
                    )
                )
            else:
                shown.append(MessageObservation(state="unsent", held=False, server=0))
        return Observation(connected=self.ws.is_connected, messages=tuple(shown))

    def apply(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> Observation:
        world, ws, vm = self.world, self.ws, self.vm
        socket = world.socket.state if world.socket is not None else "closed"

        def refuse() -> StepRefused:
            what = stimulus.value if message is None else f"{stimulus.value} m{message + 1}"
            return StepRefused(f"{what} cannot happen here")

        if stimulus is Stimulus.send:
            nxt = len(vm.messages)
            if (
                not world.foreground
                or nxt >= self.count
                or (message is not None and message != nxt)
                or (ws.is_connected and socket == "opening")  # the send awaits the handshake
                or outcome is Outcome.ws_vanished  # this world's dead sockets always raise
            ):
                raise refuse()
            vm.send(f"m{nxt + 1}")
        elif stimulus is Stimulus.connect:
            if not world.foreground or ws.is_connected:
                raise refuse()
            ws.connect()
        elif stimulus is Stimulus.handshake_ack:
            if socket != "opening" or not world.network:
                raise refuse()
            assert world.socket is not None
            world.socket.state = "open"
        elif stimulus is Stimulus.handshake_fail:
            if not world.foreground or socket != "opening":
                raise refuse()
            ws.handle_disconnect()  # the handshake's error reaches the client
        elif stimulus is Stimulus.app_background:
            if not world.foreground:
                raise refuse()
            world.foreground = False
            if world.socket is not None and socket != "closed":
                world.socket.die("suspended")  # iOS suspends it, silently
        elif stimulus is Stimulus.app_foreground:
            if world.foreground:
                raise refuse()
            world.foreground = True
        elif stimulus is Stimulus.network_lost:
            if not world.network:
                raise refuse()
            world.network = False
            if socket in ("opening", "open"):  # only a live socket reports it
                ws.handle_disconnect()
        elif stimulus is Stimulus.network_restored:
            if world.network:
                raise refuse()
            world.network = True
        elif stimulus is Stimulus.socket_error:
            if not world.foreground or socket != "suspended":
                raise refuse()
            ws.handle_disconnect()  # the receive loop reports the suspended socket
        elif stimulus is Stimulus.done:
            m = self._sent(message)
            if m not in world.server.owes_done or socket != "open":
                raise refuse()
            world.server.owes_done.discard(m)
            ws.received_done(m)
        elif stimulus in (Stimulus.rest_ok, Stimulus.rest_error, Stimulus.rest_lost_response):
            m = self._sent(message)
            needs_network = stimulus is not Stimulus.rest_error
            if (
                m not in world.server.rest_requests
                or not world.foreground
                or (needs_network and not world.network)
            ):
                raise refuse()
            answer = world.server.rest_requests.pop(m)
            if stimulus is not Stimulus.rest_error:
                world.server.apply(m)
            answer(stimulus is Stimulus.rest_ok)
        else:  # connection_dropped, ping_timeout: not in this world
            raise refuse()
        return self.observation()

    def _sent(self, message: int | None) -> str:
        if message is None or not 0 <= message < len(self.vm.messages):
            raise StepRefused("the step needs a message the user sent")
        return self.vm.messages[message].id


class FixedExampleClientAdapter(ExampleClientAdapter):
    """The fixed client: an entry stays in the pending-retry list until confirmed."""

    name = "example-client-fixed"
    clear_on_ws_send = False
