package io.statebackend.internal;

import org.apache.flink.runtime.state.StateBackend;

/** What a state backend adds on a Flink line: nothing on 1.20 (no asynchronous state there). */
public interface FlinkLineStateBackend extends StateBackend {}
