"""The review's first section: what the checker found, in a few sentences per
design, the seed's bug and fix drawn, and whether each design depends on the
send raising."""

from __future__ import annotations

from collections.abc import Sequence

from fsm.analysis.questions import Dependence
from fsm.analysis.trace import Trace
from fsm.model.design import ENVIRONMENTS, Design
from fsm.render import catalog
from fsm.render.review.data import SEND_MESSAGES, ReviewData
from fsm.render.review.document import (
    Block,
    BulletList,
    Code,
    Figure,
    Heading,
    Inline,
    Link,
    Paragraph,
    Strong,
    Text,
)
from fsm.render.review.parts import cex_anchor, count_steps
from fsm.render.text import trace_words

__all__ = ["STORY_COUNTEREXAMPLE", "STORY_DIFF", "story_section"]


_DEPENDENCE_WORDS = {
    Dependence.independent: "keeps the message whichever way the send fails",
    Dependence.needs_the_raise: "depends on the send raising",
    Dependence.loses_either_way: "loses the message whichever way the send fails",
    Dependence.needs_the_silence: "loses the message only when the send raises",
}


def _send_section(data: ReviewData) -> list[Block]:
    """Which designs keep a message sent into a suspended socket only because the send
    raises: the seed's root cause says the send "fails silently", its fix catches an
    error from it."""
    items: list[Text] = []
    for d in data.designs:
        answer = data.sends.get(d.name)
        if answer is None:
            continue
        text: Text = [Strong(d.name), f" {_DEPENDENCE_WORDS[answer.verdict]}"]
        if answer.verdict is Dependence.needs_the_raise and answer.silent is not None:
            text = [
                *text,
                ": when a send into a suspended socket returns normally, ",
                Code("catch"),
                f" never runs and the message is lost in {count_steps(len(answer.silent))} (",
                Code(trace_words(answer.silent)),
                ").",
            ]
        elif answer.verdict is Dependence.loses_either_way and answer.raised is not None:
            text = [
                *text,
                f" (raised: {count_steps(len(answer.raised))}, ",
                Code(trace_words(answer.raised)),
                ").",
            ]
        else:
            text = [*text, "."]
        items.append(text)
    if not items:
        return []
    return [
        Heading(3, "Does it depend on the send raising?", "send-raising"),
        Paragraph(
            [
                "The seed's root cause says a send into a suspended socket \"fails silently "
                '(no error thrown)", while its fix catches an error from that send. Each '
                "design is explored with the send raising (",
                Code("ios-suspend"),
                ") and returning normally (",
                Code("ios-suspend-silent"),
                f"), with {SEND_MESSAGES} message, looking for a message lost right after "
                "such a send:",
            ]
        ),
        BulletList(items),
    ]


#: The properties the story's first sentence is about: what a user loses or gets twice.
_HARM = (
    ("no-silent-loss", "loses a message"),
    ("no-duplicate-delivery", "delivers a message twice"),
)
#: The seed's bug, drawn first: pre-fix losing a message sent into the stale socket.
STORY_COUNTEREXAMPLE = ("pre-fix", "ios-suspend", "no-silent-loss")
#: The seed's fix, drawn second.
STORY_DIFF = ("message", "pre-fix", "fixed")


def _envs_text(envs: Sequence[str]) -> str:
    if len(envs) == len(ENVIRONMENTS):
        return "in every environment"
    return "in " + " and ".join(envs) if len(envs) <= 2 else "in " + ", ".join(envs)


def _shortest(data: ReviewData, design: str, pid: str) -> tuple[str, Trace] | None:
    """The environment with the shortest counterexample to ``pid``, and that trace."""
    found = [
        (len(v.trace), env, v.trace)
        for env in ENVIRONMENTS
        if (v := data.result(design, env).verdict(pid)).violated and v.trace is not None
    ]
    if not found:
        return None
    _, env, trace = min(found, key=lambda f: f[0])
    return env, trace


def _design_story(data: ReviewData, d: Design) -> Text:
    """Two or three sentences: what the design loses or duplicates, where, by which
    shortest trace; what else it breaks."""
    broken: dict[str, list[str]] = {}
    for env in ENVIRONMENTS:
        for v in data.result(d.name, env).verdicts:
            if v.violated:
                broken.setdefault(v.id, []).append(env)
    if not broken and (idle := _inapplicable(data, d)):
        return [
            Strong(d.name),
            f" keeps every property that applies {_envs_text(list(ENVIRONMENTS))}: it never "
            "loses a message and never delivers one twice.",
            *idle,
        ]
    if not broken:
        return [
            Strong(d.name),
            f" keeps every property {_envs_text(list(ENVIRONMENTS))}: it never loses a "
            "message, never delivers one twice, and every message ends confirmed or "
            "visibly failed without the user's help.",
        ]
    text: list[Inline] = [Strong(d.name)]
    harms = [(pid, words) for pid, words in _HARM if pid in broken]
    for n, (pid, words) in enumerate(harms):
        shortest = _shortest(data, d.name, pid)
        assert shortest is not None
        env, trace = shortest
        length = count_steps(len(trace))
        text += [
            (" " if n == 0 else "; it "),
            f"{words} in {env} ({length}): "
            if broken[pid] == [env]
            else f"{words} {_envs_text(broken[pid])}; shortest, in {env} ({length}): ",
            Code(trace_words(trace)),
            " (",
            Link("trace", "#" + cex_anchor(d.name, env, pid)),
            ")",
        ]
    if harms:
        text.append(".")
    else:
        text.append(" never loses a message and never delivers one twice.")
    others = [pid for pid in broken if pid not in dict(_HARM)]
    if others:
        text.append(" It also violates ")
        for n, pid in enumerate(others):
            env = broken[pid][0]
            text += [", " if n else "", Link(pid, "#" + cex_anchor(d.name, env, pid))]
            if len(broken[pid]) < len(ENVIRONMENTS):
                text.append(f" ({', '.join(broken[pid])})")
        text.append(".")
    return [*text, *_inapplicable(data, d)]


def _inapplicable(data: ReviewData, d: Design) -> Text:
    """The properties that say nothing about ``d``, and why, in a sentence."""
    first = data.result(d.name, next(iter(ENVIRONMENTS)))
    idle = [v for v in first.verdicts if v.holds is None]
    if not idle:
        return []
    text: list[Inline] = []
    for n, v in enumerate(idle):
        text += [" " if n == 0 else (" and " if n == len(idle) - 1 else ", "), Code(v.id)]
    verb = "does" if len(idle) == 1 else "do"
    why = idle[0].explanation[0].text.removeprefix("not applicable: ")
    return [*text, f" {verb} not apply: {why}."]


def story_section(data: ReviewData) -> list[Block]:
    """What a reviewer came for: per design what it loses or duplicates and how, the
    seed's bug drawn over the machines, the seed's fix as a diff, the send question."""
    blocks: list[Block] = [
        BulletList([_design_story(data, d) for d in data.designs]),
    ]
    design, env, pid = STORY_COUNTEREXAMPLE
    cex = data.diagram(catalog.counterexample_path(design, env, pid))
    if cex is not None:
        blocks += [
            Heading(3, "The seed's bug: a send into the stale socket", "story-bug"),
            Paragraph(
                [
                    Strong(design),
                    " sets the connected flag on ",
                    Code("resume()"),
                    ", iOS suspends the socket in the background, the send after the "
                    "return raises, the error is only logged and the message stays ",
                    Code("sent_ws"),
                    " with nothing on the server. The shaded row says why that state is a loss (",
                    Link("step table", "#" + cex_anchor(design, env, pid)),
                    ").",
                ]
            ),
            Figure(cex),
        ]
    machine, old, new = STORY_DIFF
    diff = data.diagram(catalog.diff_path(machine, old, new))
    if diff is not None:
        blocks += [
            Heading(3, f"The seed's fix: {old} → {new}", "story-fix"),
            Paragraph(
                [
                    "The swallowed send error (F1) is gone: a failed send now disconnects "
                    "and retries the pending-retry list over REST. Removed edges red and "
                    "dashed, added ones green (",
                    Link("every diff", f"#diff-{old}-{new}"),
                    ").",
                ]
            ),
            Figure(diff),
        ]
    return blocks + _send_section(data)
