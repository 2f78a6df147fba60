package io.statebackend;

import org.apache.flink.streaming.api.functions.sink.SinkFunction;

/** The tests' sinks: Flink 1.20's {@code SinkFunction}, by one name on every line. */
public interface TestSink<T> extends SinkFunction<T> {}
