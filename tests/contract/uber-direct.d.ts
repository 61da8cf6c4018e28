// Uber Direct's response shapes as its API reference documents them (the uber-direct package's own declarations
// name a types file it does not ship, so every response there is `any`). Uber marks every field optional; the
// `Promised` types below add the fields we promise to always send.

export type UberStatus = "pending" | "pickup" | "pickup_complete" | "dropoff" | "delivered" | "canceled" | "returned";

export interface LatLng { lat?: number; lng?: number }

export interface Waypoint {
  name?: string;
  phone_number?: string;
  address?: string;
  notes?: string;
  location?: LatLng;
  status?: "completed" | "failed";
  status_timestamp?: string;
  external_store_id?: string;
}

export interface Courier {
  name?: string;
  vehicle_type?: string;
  phone_number?: string;
  location?: LatLng;
  img_href?: string;
}

export interface Manifest { reference?: string; description?: string; total_value?: number }

export interface DeliveryResp {
  id?: string;
  quote_id?: string;
  complete?: boolean;
  courier?: Courier;
  courier_imminent?: boolean;
  created?: string;
  currency?: string;
  dropoff?: Waypoint;
  dropoff_deadline?: string;
  dropoff_eta?: string;
  dropoff_ready?: string;
  external_id?: string;
  fee?: number;
  kind?: string;
  live_mode?: boolean;
  manifest?: Manifest;
  pickup?: Waypoint;
  pickup_deadline?: string;
  pickup_eta?: string;
  pickup_ready?: string;
  status?: UberStatus;
  tip?: number;
  tracking_url?: string;
  undeliverable_action?: "" | "returned" | "left_at_door";
  undeliverable_reason?: string;
  updated?: string;
  uuid?: string;
  return?: Waypoint;
}

export interface DeliveryQuoteResp {
  kind?: string;
  id?: string;
  created?: string;
  expires?: string;
  fee?: number;
  currency?: string;
  currency_type?: string;
  dropoff_eta?: string;
  duration?: number;
  pickup_duration?: number;
  dropoff_deadline?: string;
}

export interface ListDeliveriesResp {
  data?: DeliveryResp[];
  next_href?: string;
  total_count?: number;
}

export interface DeliveryStatusEvent {
  id?: string;
  kind?: "event.delivery_status";
  status?: UberStatus;
  created?: string;
  delivery_id?: string;
  data?: DeliveryResp;
  live_mode?: boolean;
  customer_id?: string;
  developer_id?: string;
  account_id?: string;
}
