// The types our answers and callbacks must conform to: the DoorDash SDK's own declarations, and Uber Direct's
// documented shapes (uber-direct.d.ts). conforms.js checks documents against the exports named here.
export type {
  DeliveryResponse as DriveDelivery, CancelNotAllowedError as DriveCancelNotAllowed,
  UpdateNotAllowedError as DriveUpdateNotAllowed, UnknownDeliveryError as DriveUnknownDelivery,
  InvalidDeliveryError as DriveInvalidDelivery, ValidationFieldError as DriveValidationError,
  DuplicateDeliveryIdError as DriveDuplicateDeliveryId,
} from "@doordash/sdk/lib/generated-client/api";
export type {
  DeliveryResp as UberDelivery, DeliveryQuoteResp as UberQuote, ListDeliveriesResp as UberDeliveryList,
  DeliveryStatusEvent as UberDeliveryStatusEvent,
} from "./uber-direct";
